//! The AWS shared configuration files, as the AWS SDKs and CLI read them:
//! the profile named by `AWS_PROFILE` (else `default`) in
//! `~/.aws/credentials` (or `AWS_SHARED_CREDENTIALS_FILE`) and
//! `~/.aws/config` (or `AWS_CONFIG_FILE`, where a profile's section is
//! `[profile NAME]`). Environment variables win over the files, as in the
//! SDKs; callers apply what is left open.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// What a profile says (every field optional).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsProfile {
    /// The profile's name.
    pub name: String,
    /// `aws_access_key_id`.
    pub access_key_id: Option<String>,
    /// `aws_secret_access_key`.
    pub secret_access_key: Option<String>,
    /// `aws_session_token`.
    pub session_token: Option<String>,
    /// `region`.
    pub region: Option<String>,
    /// `endpoint_url` (the profile's, or its `s3 = ...` sub-section's).
    pub endpoint_url: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn home_file(var: &str, rel: &str) -> Option<PathBuf> {
    env(var)
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(rel)))
}

/// The `key = value` settings of section `wanted` of an INI text. Indented
/// lines under a `key =` line with no value (a sub-section such as
/// `s3 =`) are returned as `key.subkey`.
fn section(text: &str, wanted: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    let mut parent: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            inside = name.trim() == wanted;
            parent = None;
            continue;
        }
        if !inside {
            continue;
        }
        let Some((k, v)) = trimmed.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
        let indented = line.starts_with(' ') || line.starts_with('\t');
        match (&parent, indented) {
            (Some(p), true) => {
                out.insert(format!("{p}.{k}"), v);
            }
            _ if v.is_empty() => parent = Some(k),
            _ => {
                parent = None;
                out.insert(k, v);
            }
        }
    }
    out
}

impl AwsProfile {
    /// Reads the profile named by `AWS_PROFILE` (else `default`) from the
    /// shared files. Missing or unreadable files are an empty profile.
    pub fn load() -> Self {
        let name = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let read = |f: Option<PathBuf>| f.and_then(|p| std::fs::read_to_string(p).ok());
        let credentials = read(home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"))
            .map(|t| section(&t, &name))
            .unwrap_or_default();
        let config_section = if name == "default" {
            "default".to_string()
        } else {
            format!("profile {name}")
        };
        let config = read(home_file("AWS_CONFIG_FILE", ".aws/config"))
            .map(|t| section(&t, &config_section))
            .unwrap_or_default();
        let get = |k: &str| credentials.get(k).or_else(|| config.get(k)).cloned();
        Self {
            access_key_id: get("aws_access_key_id"),
            secret_access_key: get("aws_secret_access_key"),
            session_token: get("aws_session_token"),
            region: get("region"),
            endpoint_url: get("s3.endpoint_url").or_else(|| get("endpoint_url")),
            name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sections_and_s3_sub_sections() {
        let text = "[default]\naws_access_key_id = AKIDEFAULT\n\n[profile backup]\nregion = eu-west-1\ns3 =\n  endpoint_url = http://127.0.0.1:9000\n  addressing_style = path\naws_secret_access_key = shh\n";
        let d = section(text, "default");
        assert_eq!(
            d.get("aws_access_key_id").map(String::as_str),
            Some("AKIDEFAULT")
        );
        let b = section(text, "profile backup");
        assert_eq!(b.get("region").map(String::as_str), Some("eu-west-1"));
        assert_eq!(
            b.get("s3.endpoint_url").map(String::as_str),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            b.get("aws_secret_access_key").map(String::as_str),
            Some("shh")
        );
        assert!(section(text, "profile other").is_empty());
    }
}
