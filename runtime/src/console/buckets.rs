//! The storage pages: buckets, a bucket's objects with downloads, and an
//! upload form whose file is stored through [`Objects::upload`], the path
//! of an S3 PutObject, so the bucket's triggers fire.
//!
//! [`Objects::upload`]: crate::storage::Objects

use axum::Extension;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use maud::html;
use serde::Deserialize;

use super::layout::{self, ConsoleError, Section, page, redirect_with_notice};
use super::session::Notice;
use super::{ConsoleState, SignedIn};

/// Objects a bucket's page lists.
const OBJECTS_PER_PAGE: usize = 500;

/// `GET /console/storage`.
pub(crate) async fn buckets_page(
    State(state): State<ConsoleState>,
    Extension(SignedIn(session)): Extension<SignedIn>,
) -> Result<Response, ConsoleError> {
    let buckets = state.objects.buckets().await?;
    let content = html! {
        @if buckets.is_empty() {
            p { "No buckets yet. A function's " code { "files" } " mount creates its bucket; any S3 client can create one." }
        } @else {
            div.table-scroll role="region" aria-label="Buckets" tabindex="0" {
                table #buckets {
                    thead { tr { th scope="col" { "Bucket" } th scope="col" { "Created" } } }
                    tbody {
                        @for bucket in &buckets {
                            tr {
                                th scope="row" { a href={ "/console/storage/" (layout::encode(&bucket.name)) } { (bucket.name) } }
                                td { (layout::time(bucket.created)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&state, &session, Section::Storage, "Storage", content))
}

/// `GET /console/storage/{bucket}`.
pub(crate) async fn bucket_page(
    State(state): State<ConsoleState>,
    Extension(SignedIn(session)): Extension<SignedIn>,
    Path(bucket): Path<String>,
) -> Result<Response, ConsoleError> {
    let (objects, more) = state.objects.objects(&bucket, OBJECTS_PER_PAGE).await?;
    let encoded = layout::encode(&bucket);
    let content = html! {
        p { a href="/console/storage" { "All buckets" } }
        section aria-labelledby="upload-heading" {
            h2 #upload-heading { "Upload" }
            form.stacked method="post" enctype="multipart/form-data"
                action={ "/console/storage/" (encoded) "/upload" } {
                input type="hidden" name="csrf" value=(session.csrf_token);
                div.field {
                    label for="upload-key" { "Key" }
                    input #upload-key name="key" autocomplete="off" aria-describedby="upload-key-hint" placeholder="in/photo.png";
                    p.hint #upload-key-hint { "Where the object goes; left empty, the file's name. A key ending in " code { "/" } " is a folder the file's name is added to. Uploading fires the bucket's storage triggers." }
                }
                div.field {
                    label for="upload-file" { "File" }
                    input #upload-file name="file" type="file" required;
                }
                button type="submit" { "Upload" }
            }
        }
        section aria-labelledby="objects-heading" {
            h2 #objects-heading { "Objects" }
            @if objects.is_empty() {
                p { "The bucket is empty." }
            } @else {
                div.table-scroll role="region" aria-labelledby="objects-heading" tabindex="0" {
                    table #objects {
                        @if more { caption { "The first " (OBJECTS_PER_PAGE) " objects by key." } }
                        thead { tr { th scope="col" { "Key" } th scope="col" { "Size" } th scope="col" { "Modified" } th scope="col" { "Type" } th scope="col" { "eTag (MD5)" } } }
                        tbody {
                            @for object in &objects {
                                tr {
                                    th scope="row" {
                                        a href={ "/console/storage/" (encoded) "/object?key=" (layout::encode(&object.key)) }
                                            download aria-label={ "Download " (object.key) } { (object.key) }
                                    }
                                    td.number { (layout::bytes(object.size)) }
                                    td { (layout::time(object.modified)) }
                                    td { (object.content_type) }
                                    td { code { (object.etag) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        &state,
        &session,
        Section::Storage,
        &format!("Bucket {bucket}"),
        content,
    ))
}

/// Query of a download.
#[derive(Deserialize)]
pub(crate) struct ObjectQuery {
    key: String,
}

/// `GET /console/storage/{bucket}/object?key=...`: the object's bytes, as
/// an attachment (never rendered as a page of the console's origin).
pub(crate) async fn download(
    State(state): State<ConsoleState>,
    Path(bucket): Path<String>,
    Query(query): Query<ObjectQuery>,
) -> Result<Response, ConsoleError> {
    let (object, file) = state.objects.open_object(&bucket, &query.key).await?;
    let file_name = object.key.rsplit('/').next().unwrap_or(&object.key);
    let disposition = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        file_name.replace(
            |c: char| !c.is_ascii_graphic() || c == '"' || c == '\\',
            "_"
        ),
        layout::encode(file_name)
    );
    let stream = file_chunks(file);
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(object.size));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// A file read in chunks as a body stream.
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::try_unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0; 256 * 1024];
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.truncate(read);
        Ok(Some((bytes::Bytes::from(buffer), file)))
    })
}

/// `POST /console/storage/{bucket}/upload`: a multipart form whose
/// `csrf` and `key` parts come before the `file` part (browsers send
/// parts in the form's order), so nothing is stored before the token is
/// checked.
pub(crate) async fn upload(
    State(state): State<ConsoleState>,
    Extension(signed_in): Extension<SignedIn>,
    Path(bucket): Path<String>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ConsoleError> {
    let mut form = form.map_err(|rejection| {
        ConsoleError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the upload is not a multipart form ({}); hint: use the form on the bucket's page",
                rejection.body_text().to_lowercase()
            ),
        )
    })?;
    let back = format!("/console/storage/{}", layout::encode(&bucket));
    let mut csrf: Option<String> = None;
    let mut key = String::new();
    let mut stored = None;
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("csrf") => csrf = Some(field.text().await.map_err(multipart_error)?),
            Some("key") => {
                key = field
                    .text()
                    .await
                    .map_err(multipart_error)?
                    .trim()
                    .to_string()
            }
            Some("file") => {
                signed_in.check_csrf(csrf.as_deref())?;
                let key = object_key(&key, field.file_name().unwrap_or(""));
                stored = Some(store(&state, &bucket, key, field).await);
                break;
            }
            _ => {}
        }
    }
    signed_in.check_csrf(csrf.as_deref())?;
    let notice = match stored {
        None => Notice {
            is_error: true,
            text: "Nothing was uploaded: the form had no file; hint: choose a file first."
                .to_string(),
        },
        Some(Ok((key, size))) => Notice {
            is_error: false,
            text: format!(
                "Uploaded {key} ({}) to {bucket}; its storage triggers have their events.",
                layout::bytes(size)
            ),
        },
        Some(Err(problem)) => Notice {
            is_error: true,
            text: format!("The upload failed: {problem}"),
        },
    };
    Ok(redirect_with_notice(&state, &signed_in.0, &back, notice))
}

/// Stores one file part; `(key, size)` or why not.
async fn store(
    state: &ConsoleState,
    bucket: &str,
    key: String,
    field: Field<'_>,
) -> Result<(String, u64), String> {
    if key.is_empty() {
        return Err("the file has no name and no key was given; hint: fill in the key".into());
    }
    let content_type = field
        .content_type()
        .filter(|kind| !kind.is_empty())
        .map(str::to_string);
    // The admin listener does not keep peer addresses; the event says
    // none, as it does for a file a function wrote.
    let source_ip = None;
    let body = field.map_err(|error| error.body_text());
    let body = std::pin::pin!(body);
    match state
        .objects
        .upload(bucket, &key, content_type, source_ip, body)
        .await
    {
        Ok((size, _etag)) => {
            tracing::info!(%bucket, %key, size, "console: uploaded an object");
            Ok((key, size))
        }
        Err(error) => Err(error.message),
    }
}

/// The key an upload goes to: the key given, the file's name added when
/// the key is empty or ends in `/`.
fn object_key(given: &str, file_name: &str) -> String {
    // Browsers send the base name; some older ones sent a whole path.
    let file_name = file_name.rsplit(['/', '\\']).next().unwrap_or("");
    if given.is_empty() || given.ends_with('/') {
        format!("{given}{file_name}")
    } else {
        given.to_string()
    }
}

fn multipart_error(error: axum::extract::multipart::MultipartError) -> ConsoleError {
    ConsoleError::new(
        error.status(),
        format!(
            "cannot read the upload form: {}; hint: send it again",
            error.body_text().to_lowercase()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_defaults_to_the_files_name() {
        let cases = [
            ("", "cat.png", "cat.png"),
            ("in/", "cat.png", "in/cat.png"),
            ("in/kitty.png", "cat.png", "in/kitty.png"),
            ("", "C:\\Users\\ann\\cat.png", "cat.png"),
            ("", "", ""),
        ];
        for (given, file_name, expected) in cases {
            assert_eq!(
                object_key(given, file_name),
                expected,
                "{given:?} {file_name:?}"
            );
        }
    }
}
