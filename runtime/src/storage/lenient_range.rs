//! A `GET` whose `Range` header does not parse gets the whole object, as
//! S3 answers it (and as HTTP allows: RFC 9110, section 14.2, a server may
//! ignore a `Range` it does not understand).
//!
//! s3s refuses such a request with `InvalidRange` while it reads the
//! headers, before the backend sees it, and SigV4 signs the header, so it
//! cannot be dropped on the way in. s3s checks the signature first and then
//! offers the request to a custom route: [`IgnoreMalformedRange`] takes the
//! signed `GET` of an object whose `Range` does not parse and answers it as
//! a `GetObject` without one.

use http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_TYPE, ETAG, HeaderValue, LAST_MODIFIED, RANGE,
};
use http::{Extensions, HeaderMap, Method, Uri};
use s3s::dto::{GetObjectInput, Range, TimestampFormat};
use s3s::route::S3Route;
use s3s::{Body, S3, S3ErrorCode, S3Request, S3Response, S3Result};

use super::s3::Backend;

/// The custom route of a `GET` with a `Range` that does not parse.
pub(super) struct IgnoreMalformedRange {
    pub(super) backend: Backend,
}

/// Whether `headers` hold a `Range` s3s would refuse, or one it reads
/// wrongly: `bytes=-` (no suffix length, so no range at all) reads as the
/// last 0 bytes there, which would answer 416.
fn has_malformed_range(headers: &HeaderMap) -> bool {
    headers.get(RANGE).is_some_and(|value| {
        value.to_str().map_or(true, |text| {
            Range::parse(text).is_err() || text == "bytes=-"
        })
    })
}

/// The bucket and key of a path-style object URL, decoded.
fn bucket_and_key(uri: &Uri) -> Option<(String, String)> {
    let (bucket, key) = uri.path().trim_start_matches('/').split_once('/')?;
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .ok()
            .map(|text| text.into_owned())
    };
    let (bucket, key) = (decode(bucket)?, decode(key)?);
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

#[async_trait::async_trait]
impl S3Route for IgnoreMalformedRange {
    fn is_match(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        _: &mut Extensions,
    ) -> bool {
        method == Method::GET
            && uri.query().is_none()
            && bucket_and_key(uri).is_some()
            && has_malformed_range(headers)
    }

    async fn call(&self, request: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let Some((bucket, key)) = bucket_and_key(&request.uri) else {
            return Err(S3ErrorCode::InvalidRequest.into());
        };
        let input = GetObjectInput::builder()
            .bucket(bucket)
            .key(key)
            .build()
            .map_err(|_| s3s::S3Error::from(S3ErrorCode::InvalidRequest))?;
        let output = self
            .backend
            .get_object(request.map_input(|_| input))
            .await?;
        let object = output.output;
        let mut response = S3Response::new(object.body.map_or_else(Body::empty, Body::from));
        let headers = &mut response.headers;
        headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(length) = object.content_length {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        }
        if let Some(content_type) = object
            .content_type
            .and_then(|value| HeaderValue::try_from(value).ok())
        {
            headers.insert(CONTENT_TYPE, content_type);
        }
        if let Some(etag) = object.e_tag.and_then(|etag| etag.to_http_header().ok()) {
            headers.insert(ETAG, etag);
        }
        if let Some(modified) = object.last_modified {
            let mut text = Vec::new();
            if modified
                .format(TimestampFormat::HttpDate, &mut text)
                .is_ok()
                && let Ok(value) = HeaderValue::try_from(text)
            {
                headers.insert(LAST_MODIFIED, value);
            }
        }
        for (name, value) in object.metadata.into_iter().flatten() {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::try_from(format!("x-amz-meta-{name}")),
                HeaderValue::try_from(value),
            ) {
                headers.insert(name, value);
            }
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_range_that_does_not_parse_is_taken() {
        let cases = [
            (Some("bytes=0-9"), false),
            (Some("bytes=5-"), false),
            (Some("bytes=-3"), false),
            (Some("bytes=-0"), false),
            (None, false),
            (Some("bytes=-"), true),
            (Some("bytes=9-0"), true),
            (Some("lines=1-2"), true),
            (Some("bytes=abc"), true),
            (Some(""), true),
        ];
        for (range, malformed) in cases {
            let mut headers = HeaderMap::new();
            if let Some(range) = range {
                headers.insert(RANGE, HeaderValue::from_static(range));
            }
            assert_eq!(has_malformed_range(&headers), malformed, "{range:?}");
        }
    }

    #[test]
    fn path_style_urls_give_bucket_and_key() {
        let uri = |text: &str| text.parse::<Uri>().unwrap();
        assert_eq!(
            bucket_and_key(&uri("/photos/in/a%20b.png")),
            Some(("photos".into(), "in/a b.png".into()))
        );
        assert_eq!(bucket_and_key(&uri("/photos")), None);
        assert_eq!(bucket_and_key(&uri("/photos/")), None);
        assert_eq!(bucket_and_key(&uri("/")), None);
    }
}
