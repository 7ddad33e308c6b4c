//! A client for one S3-compatible bucket, with its own endpoint, region,
//! addressing style and credentials (separate from the repository's).
//!
//! Settings left open come from `LIFEBOAT_BUCKET_*`, then `AWS_*`
//! variables, then the shared AWS files (`AWS_PROFILE`,
//! `~/.aws/credentials`, `~/.aws/config`). Without keys, requests to AWS
//! itself (or wherever web-identity or container credentials are set up)
//! use the credentials the AWS SDKs would find (web identity, container,
//! instance metadata); requests to another endpoint go unsigned.
//!
//! Requests are built by `rusty-s3` (URLs, query parameters, XML), signed
//! with SigV4 headers by `object_store`'s `AwsAuthorizer`, and sent with
//! `reqwest`. Keys are taken exactly as the store lists them: a key whose
//! URL would not name it again (a `..` segment, a leading `/`) is refused
//! rather than fetched under another name.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_format::tree::ObjectAttrs;
use object_store::aws::{AmazonS3Builder, AwsAuthorizer, AwsCredential, AwsCredentialProvider};
use percent_encoding::percent_decode_str;
use reqwest::{Method, Response, StatusCode};
use rusty_s3::actions::{
    AbortMultipartUpload, CompleteMultipartUpload, CreateMultipartUpload, DeleteObject, GetObject,
    HeadObject, ListObjectsV2, PutObject, UploadPart,
};
use rusty_s3::{Bucket, S3Action, UrlStyle};
use url::Url;

use super::error::{BucketError, Result};

/// rusty-s3 builds unsigned URLs with this; it is never sent.
const SIGNED_FOR: Duration = Duration::from_secs(3600);

/// Where a bucket is and how to reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketSpec {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside it (no leading or trailing `/`; empty for all).
    pub prefix: String,
    /// Endpoint URL (default: `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`,
    /// else AWS's regional endpoint).
    pub endpoint: Option<String>,
    /// Region (default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else us-east-1).
    pub region: Option<String>,
    /// Path-style addressing (default: on for a custom endpoint, off for AWS).
    pub path_style: Option<bool>,
    /// Access key id (default: `LIFEBOAT_BUCKET_ACCESS_KEY_ID`, else
    /// `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// Secret key (default: `LIFEBOAT_BUCKET_SECRET_ACCESS_KEY`, else
    /// `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<String>,
    /// Session token (default: `LIFEBOAT_BUCKET_SESSION_TOKEN`, else
    /// `AWS_SESSION_TOKEN`).
    pub session_token: Option<String>,
}

impl BucketSpec {
    /// Parses `s3://BUCKET[/PREFIX]`.
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            BucketError::Invalid(format!(
                "{url:?} is not a bucket location; write s3://BUCKET or s3://BUCKET/PREFIX"
            ))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid {
            return Err(BucketError::Invalid(format!(
                "bucket name {bucket:?}: 3 to 63 characters of a-z, 0-9, '-' and '.'"
            )));
        }
        Ok(Self {
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').into(),
            ..Self::default()
        })
    }

    /// `s3://bucket[/prefix]`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

/// An object as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Key relative to the client's prefix.
    pub key: String,
    /// ETag, quotes included.
    pub etag: String,
    /// Length in bytes.
    pub size: u64,
    /// Last-modified time.
    pub modified: DateTime<Utc>,
}

/// One page of a listing.
#[derive(Debug, Default)]
pub struct ListPage {
    /// Objects.
    pub objects: Vec<Listed>,
    /// Common prefixes (relative to the client's prefix), when a delimiter was given.
    pub prefixes: Vec<String>,
    /// Where the next page starts, if there is one.
    pub next: Option<String>,
}

/// How requests are signed.
#[derive(Clone)]
enum Credentials {
    /// Not at all (public buckets, or stores that need no signature).
    Anonymous,
    /// With fixed keys.
    Fixed(std::sync::Arc<AwsCredential>),
    /// With keys fetched (and refreshed) by the AWS credential chain.
    Chain(AwsCredentialProvider),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::Anonymous => "Anonymous",
            Credentials::Fixed(_) => "Fixed",
            Credentials::Chain(_) => "Chain",
        })
    }
}

/// A connection to one bucket (cheap to clone).
#[derive(Clone, Debug)]
pub struct BucketClient {
    bucket: Bucket,
    credential: Credentials,
    http: reqwest::Client,
    prefix: String,
    endpoint: String,
    url: String,
}

impl BucketClient {
    /// Builds a client for `spec`, filling what it leaves open from the
    /// environment. Sends nothing.
    pub fn new(spec: &BucketSpec) -> Result<Self> {
        let profile = lifeboat_storage::aws_profile::AwsProfile::load();
        let region = spec
            .region
            .clone()
            .or_else(|| env(&["AWS_REGION", "AWS_DEFAULT_REGION"]))
            .or_else(|| profile.region.clone())
            .unwrap_or_else(|| "us-east-1".into());
        let custom = spec
            .endpoint
            .clone()
            .or_else(|| env(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]))
            .or_else(|| profile.endpoint_url.clone());
        let path_style = spec.path_style.unwrap_or(custom.is_some());
        let endpoint = custom.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let parsed = Url::parse(&endpoint)
            .map_err(|e| BucketError::Invalid(format!("endpoint {endpoint:?}: {e}")))?;
        let style = if path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(parsed, style, spec.bucket.clone(), region.clone())
            .map_err(|e| BucketError::Invalid(format!("endpoint {endpoint:?}: {e}")))?;
        let (mut key, mut secret) = (
            spec.access_key_id
                .clone()
                .or_else(|| env(&["LIFEBOAT_BUCKET_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"])),
            spec.secret_access_key
                .clone()
                .or_else(|| env(&["LIFEBOAT_BUCKET_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"])),
        );
        let mut token = spec
            .session_token
            .clone()
            .or_else(|| env(&["LIFEBOAT_BUCKET_SESSION_TOKEN", "AWS_SESSION_TOKEN"]));
        if key.is_none() && secret.is_none() {
            key = profile.access_key_id.clone();
            secret = profile.secret_access_key.clone();
            token = token.or(profile.session_token.clone());
        }
        if let Some(t) = &token
            && !t.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(BucketError::Invalid(
                "the session token has characters an HTTP header cannot carry".into(),
            ));
        }
        // The credential chain only where it can answer: AWS itself (instance
        // metadata), or where web-identity or container credentials are set
        // up. Elsewhere (a local test store) asking it would only time out.
        let chain = endpoint.contains(".amazonaws.com")
            || env(&[
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            ])
            .is_some();
        let credential = match (key, secret) {
            (Some(key_id), Some(secret_key)) => {
                Credentials::Fixed(std::sync::Arc::new(AwsCredential {
                    key_id,
                    secret_key,
                    token,
                }))
            }
            _ if chain => {
                let store = AmazonS3Builder::from_env()
                    .with_bucket_name(&spec.bucket)
                    .with_region(&region)
                    .build()
                    .map_err(|e| BucketError::Invalid(format!("AWS credentials: {e}")))?;
                Credentials::Chain(store.credentials().clone())
            }
            _ => Credentials::Anonymous,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| BucketError::Invalid(format!("HTTP client: {e}")))?;
        Ok(Self {
            bucket,
            credential,
            http,
            prefix: spec.prefix.clone(),
            endpoint,
            url: spec.url(),
        })
    }

    /// `s3://bucket[/prefix]`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The bucket's name.
    pub fn bucket_name(&self) -> &str {
        self.bucket.name()
    }

    /// A client for `prefix` (relative to the bucket) of the same bucket.
    pub fn with_prefix(&self, prefix: &str) -> Self {
        let prefix = prefix.trim_matches('/').to_string();
        let url = if prefix.is_empty() {
            format!("s3://{}", self.bucket.name())
        } else {
            format!("s3://{}/{prefix}", self.bucket.name())
        };
        Self {
            prefix,
            url,
            ..self.clone()
        }
    }

    /// The key prefix (relative to the bucket).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn relative<'a>(&self, full: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.prefix)
                .and_then(|s| s.strip_prefix('/'))
                .unwrap_or(full)
        }
    }

    /// Checks that `full` (a key relative to the bucket) can be named in a
    /// URL that the store reads back as the same key.
    fn addressable(&self, full: &str) -> Result<()> {
        let url = self
            .bucket
            .object_url(full)
            .map_err(|e| BucketError::Invalid(format!("key {full:?}: {e}")))?;
        let base = self.bucket.base_url().path();
        let named = url
            .path()
            .strip_prefix(base)
            .map(|p| percent_decode_str(p).decode_utf8_lossy().into_owned());
        if named.as_deref() == Some(full) && !full.is_empty() {
            Ok(())
        } else {
            Err(BucketError::Invalid(format!(
                "key {full:?} cannot be named in a URL without changing it (a '.' or '..' segment, or a leading '/')"
            )))
        }
    }

    async fn send(
        &self,
        what: &str,
        method: Method,
        url: Url,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Response> {
        let signed = self.sign(method.clone(), &url, headers).await?;
        let req = self.http.request(method, url).headers(signed);
        let req = match body {
            Some(b) => req.body(b),
            None => req,
        };
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        if resp.status().is_success() || resp.status() == StatusCode::PARTIAL_CONTENT {
            return Ok(resp);
        }
        Err(self.refusal(what, resp).await)
    }

    /// `headers` plus the SigV4 ones (none without credentials).
    async fn sign(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, String)],
    ) -> Result<http::HeaderMap> {
        let credential = match &self.credential {
            Credentials::Anonymous => None,
            Credentials::Fixed(c) => Some(c.clone()),
            Credentials::Chain(p) => {
                Some(p.get_credential().await.map_err(|e| BucketError::Denied {
                    bucket: self.url.clone(),
                    detail: format!("no AWS credentials: {e}"),
                })?)
            }
        };
        let mut builder = http::Request::builder().method(method).uri(url.as_str());
        for (k, v) in headers {
            builder = builder.header(*k, v);
        }
        let mut request = builder
            .body(object_store::client::HttpRequestBody::from(Vec::new()))
            .map_err(|e| BucketError::Invalid(format!("request to {url}: {e}")))?;
        if let Some(c) = &credential {
            AwsAuthorizer::new(c, "s3", self.bucket.region())
                .with_sign_payload(false)
                .try_authorize(&mut request, None)
                .map_err(|e| BucketError::Invalid(format!("signing a request: {e}")))?;
        }
        Ok(request.into_parts().0.headers)
    }

    fn transport(&self, e: reqwest::Error) -> BucketError {
        let mut detail = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            detail = format!("{detail}: {c}");
            cause = c.source();
        }
        BucketError::Unreachable {
            endpoint: self.endpoint.clone(),
            detail,
        }
    }

    async fn refusal(&self, what: &str, resp: Response) -> BucketError {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let tag = |t: &str| {
            let open = format!("<{t}>");
            let close = format!("</{t}>");
            body.split_once(&open)
                .and_then(|(_, rest)| rest.split_once(&close))
                .map(|(v, _)| v.to_string())
                .unwrap_or_default()
        };
        let (code, message) = (tag("Code"), tag("Message"));
        match (status.as_u16(), code.as_str()) {
            (_, "NoSuchBucket") => BucketError::NoSuchBucket {
                bucket: self.bucket.name().into(),
                endpoint: self.endpoint.clone(),
            },
            (401 | 403, _)
            | (
                _,
                "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "InvalidClientTokenId",
            ) => BucketError::Denied {
                bucket: self.bucket.name().into(),
                detail: format!("{code} {message}").trim().to_string(),
            },
            _ => BucketError::Http {
                what: what.into(),
                status: status.as_u16(),
                code,
                message,
            },
        }
    }

    /// One page of the objects below `prefix` (relative to the client's
    /// prefix; empty for all), grouped at `/` when `delimited`.
    pub async fn list_page(
        &self,
        prefix: &str,
        delimited: bool,
        next: Option<&str>,
    ) -> Result<ListPage> {
        let full = match (self.prefix.is_empty(), prefix.is_empty()) {
            (true, _) => prefix.to_string(),
            (false, true) => format!("{}/", self.prefix),
            (false, false) => format!("{}/{prefix}", self.prefix),
        };
        let mut action = ListObjectsV2::new(&self.bucket, None);
        if !full.is_empty() {
            action.with_prefix(full.as_str());
        }
        if delimited {
            action.with_delimiter("/");
        }
        if let Some(token) = next {
            action.with_continuation_token(token);
        }
        let url = action.sign(SIGNED_FOR);
        let what = format!("listing {}", self.url);
        let resp = self.send(&what, Method::GET, url, &[], None).await?;
        let text = resp.text().await.map_err(|e| self.transport(e))?;
        let parsed = ListObjectsV2::parse_response(&text).map_err(|e| BucketError::Http {
            what: what.clone(),
            status: 200,
            code: "MalformedListing".into(),
            message: e.to_string(),
        })?;
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let mut page = ListPage {
            next: parsed.next_continuation_token,
            ..ListPage::default()
        };
        for c in parsed.contents {
            let key = decode(&c.key);
            let modified = DateTime::parse_from_rfc3339(&c.last_modified)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| BucketError::Http {
                    what: what.clone(),
                    status: 200,
                    code: "MalformedListing".into(),
                    message: format!("LastModified {:?} of {key:?}: {e}", c.last_modified),
                })?;
            page.objects.push(Listed {
                key: self.relative(&key).to_string(),
                etag: c.etag,
                size: c.size,
                modified,
            });
        }
        for p in parsed.common_prefixes {
            page.prefixes
                .push(self.relative(&decode(&p.prefix)).to_string());
        }
        Ok(page)
    }

    /// Reads `key` (or a byte range of it) as long as its ETag is still
    /// `etag`: a changed object answers [`BucketError::Changed`], a deleted
    /// one [`BucketError::Gone`].
    pub async fn get(&self, key: &str, etag: &str, range: Option<Range<u64>>) -> Result<Response> {
        let full = self.full_key(key);
        self.addressable(&full)?;
        let url = GetObject::new(&self.bucket, None, &full).sign(SIGNED_FOR);
        let mut headers = vec![("if-match", etag.to_string())];
        if let Some(r) = &range {
            headers.push((
                "range",
                format!("bytes={}-{}", r.start, r.end.saturating_sub(1)),
            ));
        }
        match self
            .send(
                &format!("reading {key:?}"),
                Method::GET,
                url,
                &headers,
                None,
            )
            .await
        {
            Err(BucketError::Http { status: 412, .. }) => {
                Err(BucketError::Changed { key: key.into() })
            }
            Err(BucketError::Http { status: 404, .. }) => {
                Err(BucketError::Gone { key: key.into() })
            }
            other => other,
        }
    }

    /// `key` as the store has it now (ETag, size, last-modified), or
    /// `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<Listed>> {
        let full = self.full_key(key);
        self.addressable(&full)?;
        let url = HeadObject::new(&self.bucket, None, &full).sign(SIGNED_FOR);
        match self
            .send(&format!("looking up {key:?}"), Method::HEAD, url, &[], None)
            .await
        {
            // The headers themselves: a HEAD response has no body to measure.
            Ok(resp) => Ok(Some(Listed {
                key: key.to_string(),
                etag: header(&resp, "etag").unwrap_or_default(),
                size: header(&resp, "content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0),
                modified: header(&resp, "last-modified")
                    .and_then(|t| DateTime::parse_from_rfc2822(&t).ok())
                    .map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
            })),
            Err(BucketError::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put_headers(attrs: &ObjectAttrs) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = [
            ("content-type", &attrs.content_type),
            ("cache-control", &attrs.cache_control),
            ("content-disposition", &attrs.content_disposition),
            ("content-encoding", &attrs.content_encoding),
            ("content-language", &attrs.content_language),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), v)))
        .collect();
        for (k, v) in &attrs.metadata {
            h.push((format!("x-amz-meta-{k}"), v.clone()));
        }
        h
    }

    /// Writes `key` in one request, with the metadata of `attrs`.
    pub async fn put(&self, key: &str, body: Vec<u8>, attrs: &ObjectAttrs) -> Result<()> {
        let full = self.full_key(key);
        self.addressable(&full)?;
        let headers = Self::put_headers(attrs);
        let url = PutObject::new(&self.bucket, None, &full).sign(SIGNED_FOR);
        let refs: Vec<(&str, String)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        self.send(
            &format!("writing {key:?}"),
            Method::PUT,
            url,
            &refs,
            Some(body),
        )
        .await?;
        Ok(())
    }

    /// Starts a multipart upload of `key` with the metadata of `attrs`.
    pub async fn start_multipart(&self, key: &str, attrs: &ObjectAttrs) -> Result<String> {
        let full = self.full_key(key);
        self.addressable(&full)?;
        let headers = Self::put_headers(attrs);
        let url = CreateMultipartUpload::new(&self.bucket, None, &full).sign(SIGNED_FOR);
        let refs: Vec<(&str, String)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let what = format!("starting the upload of {key:?}");
        let resp = self.send(&what, Method::POST, url, &refs, None).await?;
        let text = resp.text().await.map_err(|e| self.transport(e))?;
        let parsed =
            CreateMultipartUpload::parse_response(&text).map_err(|e| BucketError::Http {
                what,
                status: 200,
                code: "MalformedResponse".into(),
                message: e.to_string(),
            })?;
        Ok(parsed.upload_id().to_string())
    }

    /// Uploads part `number` (from 1) of a multipart upload; returns its ETag.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        body: Vec<u8>,
    ) -> Result<String> {
        let full = self.full_key(key);
        let url = UploadPart::new(&self.bucket, None, &full, number, upload_id).sign(SIGNED_FOR);
        let resp = self
            .send(
                &format!("uploading part {number} of {key:?}"),
                Method::PUT,
                url,
                &[],
                Some(body),
            )
            .await?;
        Ok(header(&resp, "etag").unwrap_or_default())
    }

    /// Completes a multipart upload from its parts' ETags in order.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<()> {
        let full = self.full_key(key);
        let action = CompleteMultipartUpload::new(
            &self.bucket,
            None,
            &full,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGNED_FOR);
        let body = action.body();
        self.send(
            &format!("completing the upload of {key:?}"),
            Method::POST,
            url,
            &[],
            Some(body.into_bytes()),
        )
        .await?;
        Ok(())
    }

    /// Abandons a multipart upload (best effort).
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) {
        let full = self.full_key(key);
        let url = AbortMultipartUpload::new(&self.bucket, None, &full, upload_id).sign(SIGNED_FOR);
        let _ = self
            .send("abandoning an upload", Method::DELETE, url, &[], None)
            .await;
    }

    /// Deletes `key` (a missing key is not an error).
    pub async fn delete(&self, key: &str) -> Result<()> {
        let full = self.full_key(key);
        self.addressable(&full)?;
        let url = DeleteObject::new(&self.bucket, None, &full).sign(SIGNED_FOR);
        match self
            .send(&format!("deleting {key:?}"), Method::DELETE, url, &[], None)
            .await
        {
            Ok(_) | Err(BucketError::Http { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A response header as text.
pub(crate) fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// What a GET response says about the object besides its bytes.
pub(crate) fn attrs_of(resp: &Response, key: &str, etag: &str) -> ObjectAttrs {
    let mut metadata = BTreeMap::new();
    for (name, value) in resp.headers() {
        if let (Some(k), Ok(v)) = (name.as_str().strip_prefix("x-amz-meta-"), value.to_str()) {
            metadata.insert(k.to_string(), v.to_string());
        }
    }
    ObjectAttrs {
        key: key.into(),
        etag: etag.into(),
        hash: String::new(),
        content_type: header(resp, "content-type"),
        cache_control: header(resp, "cache-control"),
        content_disposition: header(resp, "content-disposition"),
        content_encoding: header(resp, "content-encoding"),
        content_language: header(resp, "content-language"),
        metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations_and_refuses_bad_names() {
        let s = BucketSpec::parse("s3://media/uploads/").unwrap_or_default();
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("media", "uploads"));
        assert_eq!(s.url(), "s3://media/uploads");
        assert!(BucketSpec::parse("media").is_err());
        assert!(BucketSpec::parse("s3://Bad_Bucket").is_err());
        assert!(BucketSpec::parse("s3://ab").is_err());
    }

    #[test]
    fn keys_that_a_url_would_rename_are_refused() {
        let spec = BucketSpec {
            endpoint: Some("http://127.0.0.1:9".into()),
            ..BucketSpec::parse("s3://media").unwrap_or_default()
        };
        let Ok(c) = BucketClient::new(&spec) else {
            panic!("client");
        };
        for ok in ["a", "a b/ü.png", "a//b", "dir/", "100%", "x?y#z", "~tmp"] {
            assert!(c.addressable(ok).is_ok(), "{ok:?} refused");
        }
        for bad in ["../../etc/passwd", "a/./b", "/abs", ".", "a/..", ""] {
            assert!(c.addressable(bad).is_err(), "{bad:?} accepted");
        }
    }
}
