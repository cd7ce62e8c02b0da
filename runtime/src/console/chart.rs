//! Bar charts drawn on the server as SVG: one bar per period, stacked by
//! series, each segment titled with its value; the same figures are in
//! the table beside the chart for screen readers and copying.

use maud::{Markup, html};

/// The drawing's size in SVG units (it scales to the page's width).
const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 240.0;
/// Room for the axis labels.
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;
/// Series get CSS classes `series-0` to `series-7`, then repeat.
pub(crate) const PALETTE_SIZE: usize = 8;

/// One stacked series: its name and a value per period.
pub(crate) struct Series<'a> {
    pub(crate) name: &'a str,
    pub(crate) values: Vec<f64>,
}

/// A stacked bar chart of `series` over `periods`, labelled `title`
/// (`id` makes its title referable), values written with `format`.
pub(crate) fn stacked_bars(
    id: &str,
    title: &str,
    periods: &[String],
    series: &[Series<'_>],
    format: impl Fn(f64) -> String,
) -> Markup {
    let totals: Vec<f64> = (0..periods.len())
        .map(|index| series.iter().map(|one| one.values[index]).sum())
        .collect();
    let top = totals.iter().copied().fold(0.0, f64::max);
    let scale = if top > 0.0 {
        (HEIGHT - BOTTOM - TOP) / top
    } else {
        0.0
    };
    let slot = (WIDTH - LEFT) / periods.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    // At most about twelve labels under the bars.
    let label_every = periods.len().div_ceil(12).max(1);
    let baseline = HEIGHT - BOTTOM;
    let title_id = format!("{id}-title");
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-labelledby=(title_id)
                preserveAspectRatio="xMinYMin meet" {
                title #(title_id) { (title) }
                line.axis x1=(LEFT) y1=(baseline) x2=(WIDTH) y2=(baseline) {}
                text.axis-label x=(LEFT - 6.0) y=(TOP + 4.0) text-anchor="end" { (format(top)) }
                text.axis-label x=(LEFT - 6.0) y=(baseline) text-anchor="end" { "0" }
                @for (index, period) in periods.iter().enumerate() {
                    @let x = LEFT + slot * index as f64 + (slot - bar) / 2.0;
                    g {
                        @for (number, value, y, height) in stack(series, index, baseline, scale) {
                            rect class={ "series-" (number % PALETTE_SIZE) }
                                x=(round(x)) y=(round(y)) width=(round(bar)) height=(round(height)) {
                                title { (period) ", " (series[number].name) ": " (format(value)) }
                            }
                        }
                    }
                    @if index % label_every == 0 {
                        text.axis-label x=(round(x + bar / 2.0)) y=(HEIGHT - 8.0) text-anchor="middle" { (period) }
                    }
                }
            }
            figcaption {
                (title)
                ul.legend {
                    @for (number, one) in series.iter().enumerate() {
                        li { span class={ "swatch series-" (number % PALETTE_SIZE) } aria-hidden="true" {} (one.name) }
                    }
                }
            }
        }
    }
}

/// The segments of period `index`'s bar, bottom up: (series, value, top
/// edge, height); a zero draws nothing.
fn stack(
    series: &[Series<'_>],
    index: usize,
    baseline: f64,
    scale: f64,
) -> Vec<(usize, f64, f64, f64)> {
    let mut top = baseline;
    let mut segments = Vec::new();
    for (number, one) in series.iter().enumerate() {
        let value = one.values[index];
        if value > 0.0 {
            let height = (value * scale).max(1.0);
            top -= height;
            segments.push((number, value, top, height));
        }
    }
    segments
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_stacked_in_proportion_and_titled() {
        let periods = vec!["12-01".to_string(), "12-02".to_string()];
        let series = [
            Series {
                name: "hello",
                values: vec![1.0, 3.0],
            },
            Series {
                name: "echo",
                values: vec![1.0, 0.0],
            },
        ];
        let svg = stacked_bars("c", "GB-s <per day>", &periods, &series, |v| format!("{v}"))
            .into_string();
        // The tallest bar (3) fills the plot: 240 - 28 - 12 = 200 units.
        assert!(svg.contains(r#"height="200""#), "{svg}");
        // 1 of 3: a third of it.
        assert!(svg.contains(r#"height="66.7""#), "{svg}");
        assert!(svg.contains("12-02, hello: 3"), "{svg}");
        assert!(!svg.contains("12-02, echo"), "a zero draws nothing: {svg}");
        assert!(svg.contains("GB-s &lt;per day&gt;"), "escaped: {svg}");
        assert_eq!(svg.matches("<rect").count(), 3);
    }

    #[test]
    fn an_empty_chart_draws_no_bars() {
        let periods = vec!["a".to_string()];
        let series = [Series {
            name: "hello",
            values: vec![0.0],
        }];
        let svg = stacked_bars("c", "t", &periods, &series, |v| format!("{v}")).into_string();
        assert!(!svg.contains("<rect"), "{svg}");
    }
}
