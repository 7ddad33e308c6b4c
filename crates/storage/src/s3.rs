//! The S3-compatible driver, on top of the `object_store` crate.
//!
//! Configuration comes from the usual variables: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` /
//! `AWS_DEFAULT_REGION`, and `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` for
//! non-AWS stores (which then use path-style addressing; plain `http://`
//! endpoints are allowed). What they leave open comes from the shared AWS
//! files (`AWS_PROFILE`, `~/.aws/credentials`, `~/.aws/config`: keys,
//! region, endpoint); without keys, web-identity (`AWS_WEB_IDENTITY_TOKEN_FILE`
//! with `AWS_ROLE_ARN`), container and instance credentials are used as
//! the AWS SDKs resolve them. `object_store`'s own retries are switched off:
//! the [`crate::retry`] wrapper retries every driver the same way, so errors
//! are classified here instead.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutOptions, PutPayload,
    RetryConfig,
};

use crate::error::StorageError;
use crate::{Capabilities, IfMissing, ObjectMeta, PutMode, Storage, keys};

/// A repository under `s3://bucket/prefix`.
#[derive(Debug, Clone)]
pub struct S3Storage {
    store: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
}

/// The endpoint configured in the environment, if any.
fn endpoint_from_env() -> Option<String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
}

impl S3Storage {
    /// Builds the driver from `AWS_*` environment variables, then the
    /// shared AWS files.
    pub fn from_env(bucket: &str, prefix: &str) -> Result<Self, StorageError> {
        let mut builder = AmazonS3Builder::from_env();
        let profile = crate::aws_profile::AwsProfile::load();
        let set = |v: &str| std::env::var(v).is_ok_and(|s| !s.is_empty());
        if !set("AWS_ACCESS_KEY_ID")
            && let (Some(key), Some(secret)) = (&profile.access_key_id, &profile.secret_access_key)
        {
            builder = builder
                .with_access_key_id(key)
                .with_secret_access_key(secret);
            if let Some(token) = &profile.session_token {
                builder = builder.with_token(token);
            }
        }
        if !["AWS_REGION", "AWS_DEFAULT_REGION"].iter().any(|v| set(v)) {
            builder = builder.with_region(profile.region.as_deref().unwrap_or("us-east-1"));
        }
        Self::build(
            builder,
            bucket,
            prefix,
            endpoint_from_env().or(profile.endpoint_url),
        )
    }

    /// Builds the driver from explicit settings only, ignoring the
    /// environment (for tests and tools that hold their own settings).
    pub fn with_settings(
        bucket: &str,
        prefix: &str,
        endpoint: Option<&str>,
        region: &str,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Result<Self, StorageError> {
        let builder = AmazonS3Builder::new()
            .with_region(region)
            .with_access_key_id(access_key_id)
            .with_secret_access_key(secret_access_key);
        Self::build(builder, bucket, prefix, endpoint.map(String::from))
    }

    fn build(
        builder: AmazonS3Builder,
        bucket: &str,
        prefix: &str,
        endpoint: Option<String>,
    ) -> Result<Self, StorageError> {
        let retry = RetryConfig {
            max_retries: 0,
            retry_timeout: Duration::from_secs(30),
            ..Default::default()
        };
        // Uploads carry a SHA-256 checksum (below), announced the way AWS's
        // SDKs do: buckets with Object Lock refuse uploads without it.
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-amz-sdk-checksum-algorithm",
            http::HeaderValue::from_static("SHA256"),
        );
        let mut client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(120))
            .with_default_headers(headers);
        // A SHA-256 checksum on every upload: the store verifies the bytes
        // it received.
        let mut builder = builder
            .with_bucket_name(bucket)
            .with_retry(retry)
            .with_checksum_algorithm(object_store::aws::Checksum::SHA256);
        if let Some(endpoint) = endpoint {
            // Non-AWS stores generally want path-style requests.
            builder = builder
                .with_endpoint(endpoint.clone())
                .with_virtual_hosted_style_request(false);
            if endpoint.starts_with("http://") {
                client = client.with_allow_http(true);
            }
        }
        let store =
            builder
                .with_client_options(client)
                .build()
                .map_err(|e| StorageError::Invalid {
                    key: format!("s3://{bucket}"),
                    detail: format!("S3 configuration: {e}"),
                })?;
        Ok(Self {
            store: Arc::new(store),
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').into(),
        })
    }

    fn path(&self, key: &str) -> Result<Path, StorageError> {
        keys::validate(key)?;
        Ok(if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        })
    }

    fn strip<'a>(&self, full: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.prefix)
                .and_then(|s| s.strip_prefix('/'))
                .unwrap_or(full)
        }
    }

    fn url(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}/{key}", self.bucket)
        } else {
            format!("s3://{}/{}/{key}", self.bucket, self.prefix)
        }
    }
}

/// The HTTP status in an error's text, if any ("status code: 503 …").
fn status_in(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok()
}

/// Maps an `object_store` error for `key` onto [`StorageError`].
fn classify(key: &str, url: &str, e: object_store::Error) -> StorageError {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => StorageError::NotFound { key: key.into() },
        E::AlreadyExists { .. } | E::Precondition { .. } => {
            StorageError::AlreadyExists { key: key.into() }
        }
        E::PermissionDenied { source, .. } | E::Unauthenticated { source, .. } => {
            StorageError::PermissionDenied {
                key: url.into(),
                detail: first_line(&source.to_string()),
            }
        }
        other => {
            let text = other.to_string();
            // Transport failures carry an HttpError somewhere in the chain.
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&other);
            while let Some(err) = source {
                if let Some(h) = err.downcast_ref::<HttpError>() {
                    return match h.kind() {
                        HttpErrorKind::Connect => StorageError::Unreachable {
                            detail: format!(
                                "cannot connect to the S3 endpoint for {url}: {}",
                                first_line(&text)
                            ),
                        },
                        _ => StorageError::Transient {
                            key: url.into(),
                            detail: first_line(&text),
                        },
                    };
                }
                source = err.source();
            }
            match status_in(&text) {
                Some(s) if s >= 500 || s == 429 || s == 408 => StorageError::Transient {
                    key: url.into(),
                    detail: first_line(&text),
                },
                _ => StorageError::Invalid {
                    key: url.into(),
                    detail: first_line(&text),
                },
            }
        }
    }
}

/// The `<Code>` and `<Message>` of an S3 XML error body, if present.
fn s3_error(text: &str) -> Option<String> {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find("</")? + start;
        Some(text[start..end].to_string())
    };
    let code = tag("Code")?;
    Some(match tag("Message") {
        Some(m) => format!("{code}: {m}"),
        None => code,
    })
}

/// A one-line summary of an error text: the S3 error code and message when
/// the body has one, else the first line, at most 400 characters.
fn first_line(s: &str) -> String {
    if let Some(e) = s3_error(s) {
        let head = s.split(": <?xml").next().unwrap_or(s);
        return format!("{} ({e})", head.lines().next().unwrap_or(head));
    }
    let line = s.lines().next().unwrap_or(s);
    if line.len() > 400 {
        let mut cut = 400;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &line[..cut])
    } else {
        line.to_string()
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StorageError> {
        let path = self.path(key)?;
        let opts = PutOptions {
            mode: match mode {
                PutMode::Overwrite => object_store::PutMode::Overwrite,
                PutMode::CreateOnly => object_store::PutMode::Create,
            },
            ..Default::default()
        };
        self.store
            .put_opts(&path, PutPayload::from(data), opts)
            .await
            .map(|_| ())
            .map_err(|e| classify(key, &self.url(key), e))
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StorageError> {
        let path = self.path(key)?;
        let opts = GetOptions {
            range: range.clone().map(GetRange::Bounded),
            ..Default::default()
        };
        if let Some(r) = &range
            && r.start >= r.end
        {
            // S3 rejects empty ranges; an empty read of an existing object is empty.
            self.head(key).await?;
            return Ok(Bytes::new());
        }
        let result = self
            .store
            .get_opts(&path, opts)
            .await
            .map_err(|e| classify(key, &self.url(key), e))?;
        let bytes = result
            .bytes()
            .await
            .map_err(|e| classify(key, &self.url(key), e))?;
        if let Some(r) = range
            && bytes.len() as u64 != r.end - r.start
        {
            return Err(StorageError::Invalid {
                key: self.url(key),
                detail: format!(
                    "range {}..{} returned {} bytes: the object is shorter than expected",
                    r.start,
                    r.end,
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StorageError> {
        let path = self.path(key)?;
        let m = self
            .store
            .head(&path)
            .await
            .map_err(|e| classify(key, &self.url(key), e))?;
        Ok(ObjectMeta {
            key: key.into(),
            size: m.size,
            modified: Some(m.last_modified.into()),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        keys::validate_prefix(prefix)?;
        let full = match (self.prefix.is_empty(), prefix.trim_end_matches('/')) {
            (true, "") => None,
            (true, p) => Some(Path::from(p)),
            (false, "") => Some(Path::from(self.prefix.as_str())),
            (false, p) => Some(Path::from(format!("{}/{p}", self.prefix))),
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(full.as_ref())
            .try_collect()
            .await
            .map_err(|e| classify(prefix, &self.url(prefix), e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let key = self.strip(m.location.as_ref()).to_string();
                (key.starts_with(prefix) && keys::validate(&key).is_ok()).then_some(ObjectMeta {
                    key,
                    size: m.size,
                    modified: Some(m.last_modified.into()),
                })
            })
            .collect())
    }

    async fn delete(&self, key: &str, if_missing: IfMissing) -> Result<(), StorageError> {
        let path = self.path(key)?;
        // S3 deletes of missing keys succeed silently: only a caller that
        // must know pays a HEAD first.
        if if_missing == IfMissing::Fail {
            self.head(key).await?;
        }
        self.store
            .delete(&path)
            .await
            .map_err(|e| classify(key, &self.url(key), e))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_create: true,
            atomic_put: true,
            remote: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_s3_error_bodies() {
        let text = "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\n\
                    <Error><Code>SignatureDoesNotMatch</Code><Message>The signature does not match</Message></Error>";
        assert_eq!(
            first_line(text),
            "Server returned non-2xx status code: 403 Forbidden (SignatureDoesNotMatch: The signature does not match)"
        );
        assert_eq!(first_line("plain\nsecond"), "plain");
    }

    #[test]
    fn finds_status_codes_in_messages() {
        assert_eq!(
            status_in("Server returned non-2xx status code: 503 Service Unavailable"),
            Some(503)
        );
        assert_eq!(status_in("status code: 429 Too Many"), Some(429));
        assert_eq!(status_in("no code here"), None);
    }
}
