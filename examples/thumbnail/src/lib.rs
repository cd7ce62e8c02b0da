//! On an object event (Function Compute's OSS event document, `POST /`),
//! reads each created `.png` or `.jpg` object from the read-only mount of
//! its bucket and writes a 128-pixel-wide thumbnail, in the same format,
//! to `thumbs/<key>` in the read-write mount of another bucket.
//!
//! The mounts (`files` in kumo.toml) and two variables say where:
//! `INPUT_DIR` (default `/in`) is the uploaded bucket, `OUTPUT_DIR`
//! (default `/out`) the thumbnails' bucket. The answer lists the
//! thumbnails written; a 4xx means the event is not one to retry, a 5xx
//! asks for a retry.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use kumo_sdk::event::document::OssDocument;
use kumo_sdk::{Error, Json, Request, StatusCode};
use serde_json::{Value, json};

/// The width of every thumbnail, in pixels.
const THUMBNAIL_WIDTH: u32 = 128;

/// Answers `{"thumbnails":[{"key","width","height"}, ...]}`; a 400 for a
/// body that is no OSS document or a key that climbs out of the mount, a
/// 500 (which Kumo retries) when a thumbnail cannot be made.
fn handle(request: Request) -> Result<Json<Value>, Error> {
    let event: OssDocument = serde_json::from_slice(request.body()).map_err(|error| {
        Error::new(
            StatusCode::BAD_REQUEST,
            format!("expected an OSS object event as JSON: {error}"),
        )
    })?;
    let input = PathBuf::from(kumo_sdk::env::var("INPUT_DIR").unwrap_or_else(|| "/in".into()));
    let output = PathBuf::from(kumo_sdk::env::var("OUTPUT_DIR").unwrap_or_else(|| "/out".into()));
    let mut written = Vec::new();
    for record in &event.events {
        let key = &record.oss.object.key;
        if !record.event_name.starts_with("ObjectCreated:") || !is_image_key(key) {
            kumo_sdk::info!("skipping {} of {key}", record.event_name);
            continue;
        }
        if key
            .split('/')
            .any(|segment| segment == ".." || segment.is_empty())
        {
            return Err(Error::new(
                StatusCode::BAD_REQUEST,
                format!("refusing the key {key}"),
            ));
        }
        let thumbnail_key = format!("thumbs/{key}");
        // The error answer is logged, with the key.
        let (width, height) = make_thumbnail(&input.join(key), &output.join(&thumbnail_key))
            .map_err(|error| {
                Error::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot make a thumbnail of {key}: {error}"),
                )
            })?;
        kumo_sdk::info!("{key} -> {thumbnail_key} ({width}x{height})");
        written.push(json!({"key": thumbnail_key, "width": width, "height": height}));
    }
    Ok(Json(json!({ "thumbnails": written })))
}

/// Whether the key names an image this example handles.
fn is_image_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg"]
        .iter()
        .any(|suffix| lower.ends_with(suffix))
}

/// Reads `source`, scales it to [`THUMBNAIL_WIDTH`] wide keeping its
/// aspect ratio, and saves it at `target` (format from the extension).
/// Returns the thumbnail's size.
fn make_thumbnail(source: &Path, target: &Path) -> Result<(u32, u32), String> {
    let bytes = std::fs::read(source)
        .map_err(|error| format!("cannot read {}: {error}", source.display()))?;
    let image = image::load_from_memory(&bytes)
        .map_err(|error| format!("not a readable image: {error}"))?;
    let height = (u64::from(image.height()) * u64::from(THUMBNAIL_WIDTH))
        .div_ceil(u64::from(image.width().max(1)))
        .max(1);
    let thumbnail = image.resize_exact(
        THUMBNAIL_WIDTH,
        u32::try_from(height).unwrap_or(u32::MAX),
        FilterType::Triangle,
    );
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
    }
    // Write beside the target and rename, so a reader never sees half a
    // thumbnail.
    let temp = target.with_extension(format!(
        "{}.partial",
        target.extension().and_then(|e| e.to_str()).unwrap_or("img")
    ));
    let format = image::ImageFormat::from_path(target)
        .map_err(|error| format!("unknown format: {error}"))?;
    thumbnail
        .save_with_format(&temp, format)
        .map_err(|error| format!("cannot write {}: {error}", temp.display()))?;
    std::fs::rename(&temp, target)
        .map_err(|error| format!("cannot write {}: {error}", target.display()))?;
    Ok((thumbnail.width(), thumbnail.height()))
}

kumo_sdk::http_handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_png_and_jpeg_keys_are_images() {
        for (key, expected) in [
            ("in/a.png", true),
            ("in/A.JPG", true),
            ("b.jpeg", true),
            ("in/notes.txt", false),
            ("png", false),
        ] {
            assert_eq!(is_image_key(key), expected, "{key}");
        }
    }
}
