//! Kumo example: a watched-folder function. When a text file is dropped
//! into the watched folder, Kumo sends a file event; this function reads
//! the file through the folder's `files` mount, counts its lines, words and
//! most frequent words, and writes the counts as JSON into a bucket through
//! a read-write mount, as `<file name>.json`.
//!
//! Where the mounts appear inside the guest is configured with two
//! environment variables: `INBOX_DIR` (the watched folder, default
//! `/inbox`) and `COUNTS_DIR` (the bucket, default `/counts`).

use std::collections::BTreeMap;

use kumo_sdk::event::Event;
use kumo_sdk::{Error, Json, Request, StatusCode};
use serde_json::{Value, json};

/// How many of the most frequent words the counts list.
const TOP_WORDS: usize = 10;

/// The counts of one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Lines (a last line without a newline counts).
    pub lines: usize,
    /// Words: runs of letters, digits, `'` and `-`, compared in lower case.
    pub words: usize,
    /// Characters.
    pub characters: usize,
    /// The most frequent words, most frequent first, ties in word order.
    pub top: Vec<(String, usize)>,
}

/// Counts the lines, words and characters of `text`, and its most frequent
/// words.
pub fn count(text: &str) -> Counts {
    let mut frequencies: BTreeMap<String, usize> = BTreeMap::new();
    let mut words = 0;
    for word in text
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
        .map(|word| word.trim_matches(|c| c == '\'' || c == '-'))
        .filter(|word| !word.is_empty())
    {
        words += 1;
        *frequencies.entry(word.to_lowercase()).or_default() += 1;
    }
    let mut top: Vec<(String, usize)> = frequencies.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(TOP_WORDS);
    Counts {
        lines: text.lines().count(),
        words,
        characters: text.chars().count(),
        top,
    }
}

/// The counts as the JSON document written to the bucket.
pub fn counts_json(path: &str, counts: &Counts) -> Value {
    let top: Vec<Value> = counts
        .top
        .iter()
        .map(|(word, count)| json!({"word": word, "count": count}))
        .collect();
    json!({
        "file": path,
        "lines": counts.lines,
        "words": counts.words,
        "characters": counts.characters,
        "top": top,
    })
}

fn server_error(message: String) -> Error {
    Error::new(StatusCode::INTERNAL_SERVER_ERROR, message)
}

/// Handles one file event: a request that is no file event is a 400, a
/// file that cannot be read or counts that cannot be written a 500 (Kumo
/// retries: the mount may not be there yet).
fn handle(request: Request) -> Result<Json<Value>, Error> {
    let file = Event::from_request(&request).and_then(|event| event.file())?;
    if file.path.contains("..") || file.path.starts_with('/') {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            format!("refusing the path `{}`", file.path),
        ));
    }
    let inbox = kumo_sdk::env::var("INBOX_DIR").unwrap_or_else(|| "/inbox".to_owned());
    let counts_dir = kumo_sdk::env::var("COUNTS_DIR").unwrap_or_else(|| "/counts".to_owned());
    let bytes = std::fs::read(format!("{inbox}/{}", file.path))
        .map_err(|error| server_error(format!("cannot read {}: {error}", file.path)))?;
    let counts = count(&String::from_utf8_lossy(&bytes));
    let document = counts_json(&file.path, &counts);
    let target = format!("{counts_dir}/{}.json", file.path);
    std::fs::write(&target, document.to_string())
        .map_err(|error| server_error(format!("cannot write {target}: {error}")))?;
    kumo_sdk::info!(
        "wordcount {}: {} words, {} lines",
        file.path,
        counts.words,
        counts.lines
    );
    Ok(Json(document))
}

kumo_sdk::http_handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_words_characters_and_top_words() {
        // (text, lines, words, characters, top)
        let cases: &[(&str, usize, usize, usize, &[(&str, usize)])] = &[
            ("", 0, 0, 0, &[]),
            ("one", 1, 1, 3, &[("one", 1)]),
            (
                "the cat\nThe dog\n",
                2,
                4,
                16,
                &[("the", 2), ("cat", 1), ("dog", 1)],
            ),
            (
                "don't stop - well-known, (really)!",
                1,
                4,
                34,
                &[("don't", 1), ("really", 1), ("stop", 1), ("well-known", 1)],
            ),
            ("été été ÉTÉ", 1, 3, 11, &[("été", 3)]),
            ("a\n\n\nb", 4, 2, 5, &[("a", 1), ("b", 1)]),
        ];
        for (text, lines, words, characters, expected_top) in cases {
            let counts = count(text);
            assert_eq!(counts.lines, *lines, "lines of {text:?}");
            assert_eq!(counts.words, *words, "words of {text:?}");
            assert_eq!(counts.characters, *characters, "characters of {text:?}");
            let top: Vec<(&str, usize)> =
                counts.top.iter().map(|(w, c)| (w.as_str(), *c)).collect();
            assert_eq!(top, expected_top.to_vec(), "top of {text:?}");
        }
    }

    #[test]
    fn only_the_ten_most_frequent_words_are_listed() {
        let text: String = (0..15).map(|i| format!("w{i:02} ").repeat(i + 1)).collect();
        let counts = count(&text);
        assert_eq!(counts.top.len(), TOP_WORDS);
        assert_eq!(counts.top[0], ("w14".to_owned(), 15));
        assert_eq!(counts.top[9], ("w05".to_owned(), 6));
        let json = counts_json("a.txt", &counts);
        assert_eq!(json["file"], "a.txt");
        assert_eq!(json["words"], 120);
        assert_eq!(json["top"][0]["word"], "w14");
    }
}
