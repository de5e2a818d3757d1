//! AWS credentials and region, as far as the AWS default chain is local:
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`)
//! in the environment, then the profile `AWS_PROFILE` (default `default`)
//! of `~/.aws/credentials` (or `AWS_SHARED_CREDENTIALS_FILE`) and
//! `~/.aws/config` (or `AWS_CONFIG_FILE`).
//!
//! Why here and not in the Bedrock adapter: these are credentials like the
//! auth profiles, and [`super::for_provider`] orders them with the rest.
//!
//! Not covered, and said so when nothing is found: instance metadata
//! (IMDS), ECS/EKS container credentials, SSO, `credential_process` and
//! assumed roles (`role_arn`). A profile that relies on one of those is an
//! error naming it, not a silent skip.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Static AWS keys. `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Keys and the region they sign for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signing {
    pub keys: Keys,
    pub region: String,
}

/// What the local chain says when it finds nothing.
pub const NOT_FOUND: &str = "no AWS credentials were found: set AWS_ACCESS_KEY_ID and \
     AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys), or AWS_PROFILE with the \
     profile in ~/.aws/credentials, or a Bedrock API key (AWS_BEARER_TOKEN_BEDROCK or the \
     provider's apiKey). Instance metadata (IMDS), container credentials, SSO, \
     credential_process and assumed roles are not supported by clawback";

/// An INI file: sections of `key = value`, names as written (lowercase
/// keys). `#` and `;` start comments; indented lines continue nested
/// settings (`s3 =` blocks), which are skipped.
pub fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section: Option<String> = None;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_owned();
            out.entry(name.clone()).or_default();
            section = Some(name);
            continue;
        }
        if let (Some(name), Some((key, value))) = (&section, line.split_once('=')) {
            let value = value.trim();
            // An inline comment needs whitespace before it.
            let value = value
                .find(" #")
                .or_else(|| value.find(" ;"))
                .map_or(value, |at| value[..at].trim_end());
            out.entry(name.clone())
                .or_default()
                .insert(key.trim().to_ascii_lowercase(), value.to_owned());
        }
    }
    out
}

/// Where the chain looks: the environment (a lookup, so tests need not
/// touch the process's) and the two files' texts.
pub struct Sources<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// `~/.aws/credentials`, if readable.
    pub credentials: Option<String>,
    /// `~/.aws/config`, if readable.
    pub config: Option<String>,
}

impl Sources<'_> {
    fn var(&self, name: &str) -> Option<String> {
        (self.env)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    pub fn profile(&self) -> String {
        self.var("AWS_PROFILE")
            .or_else(|| self.var("AWS_DEFAULT_PROFILE"))
            .unwrap_or_else(|| "default".to_owned())
    }

    /// The profile's section of the config file (`[profile x]`, or
    /// `[default]`).
    fn config_section(&self, profile: &str) -> Option<BTreeMap<String, String>> {
        let config = parse_ini(self.config.as_deref()?);
        config
            .get(&format!("profile {profile}"))
            .or_else(|| {
                (profile == "default")
                    .then(|| config.get("default"))
                    .flatten()
            })
            .cloned()
    }
}

/// The process's sources: its environment and the files it points at.
pub fn local_sources(env: &dyn Fn(&str) -> Option<String>) -> Sources<'_> {
    let home = env("HOME").map(PathBuf::from);
    let file = |var: &str, name: &str| {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|home| home.join(".aws").join(name)))
            .and_then(|path| std::fs::read_to_string(path).ok())
    };
    Sources {
        env,
        credentials: file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        config: file("AWS_CONFIG_FILE", "config"),
    }
}

/// The chain's credentials and where they came from (`aws-env`,
/// `aws-profile:<name>`); `None` when there are none; an error when a
/// profile exists but needs what clawback cannot do, or when a named
/// profile does not exist.
pub fn chain(sources: &Sources<'_>) -> Result<Option<(String, Keys)>, String> {
    if let (Some(id), Some(secret)) = (
        sources.var("AWS_ACCESS_KEY_ID"),
        sources.var("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Some((
            "aws-env".to_owned(),
            Keys {
                access_key_id: id,
                secret_access_key: secret,
                session_token: sources.var("AWS_SESSION_TOKEN"),
            },
        )));
    }
    let profile = sources.profile();
    let named = sources.var("AWS_PROFILE").is_some();
    let from_credentials = sources
        .credentials
        .as_deref()
        .map(parse_ini)
        .and_then(|file| file.get(&profile).cloned());
    let from_config = sources.config_section(&profile);
    // The credentials file wins over the config file, key by key.
    let mut settings = from_config.clone().unwrap_or_default();
    if let Some(credentials) = &from_credentials {
        settings.extend(credentials.clone());
    }
    if let (Some(id), Some(secret)) = (
        settings.get("aws_access_key_id"),
        settings.get("aws_secret_access_key"),
    ) {
        return Ok(Some((
            format!("aws-profile:{profile}"),
            Keys {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                session_token: settings.get("aws_session_token").cloned(),
            },
        )));
    }
    let unsupported = [
        "sso_session",
        "sso_start_url",
        "role_arn",
        "credential_process",
        "credential_source",
        "web_identity_token_file",
    ];
    if let Some(key) = unsupported.iter().find(|key| settings.contains_key(**key)) {
        return Err(format!(
            "the AWS profile \"{profile}\" gets its credentials through {key}, which clawback \
             does not support; export static keys (for SSO: `aws configure export-credentials \
             --profile {profile} --format env`) or use a Bedrock API key"
        ));
    }
    if named && from_credentials.is_none() && from_config.is_none() {
        return Err(format!(
            "AWS_PROFILE names the profile \"{profile}\", which neither ~/.aws/credentials nor \
             ~/.aws/config has"
        ));
    }
    if from_credentials.is_some() || from_config.is_some() {
        return Err(format!(
            "the AWS profile \"{profile}\" has no aws_access_key_id and aws_secret_access_key"
        ));
    }
    Ok(None)
}

/// The region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`
/// in the config file; `None` when none says.
pub fn region(sources: &Sources<'_>) -> Option<String> {
    sources
        .var("AWS_REGION")
        .or_else(|| sources.var("AWS_DEFAULT_REGION"))
        .or_else(|| {
            sources
                .config_section(&sources.profile())
                .and_then(|section| section.get("region").cloned())
                .filter(|region| !region.is_empty())
        })
}

/// The region in a standard Bedrock endpoint's host
/// (`bedrock-runtime[-fips].<region>.amazonaws.com[.cn]`).
pub fn region_of_endpoint(base_url: &str) -> Option<String> {
    let host = base_url.split("://").nth(1)?.split(['/', ':']).next()?;
    let host = host.to_ascii_lowercase();
    let rest = host
        .strip_prefix("bedrock-runtime-fips.")
        .or_else(|| host.strip_prefix("bedrock-runtime."))?;
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
    (!region.is_empty() && !region.contains('.')).then(|| region.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources<'a>(
        env: &'a dyn Fn(&str) -> Option<String>,
        credentials: Option<&str>,
        config: Option<&str>,
    ) -> Sources<'a> {
        Sources {
            env,
            credentials: credentials.map(str::to_owned),
            config: config.map(str::to_owned),
        }
    }

    const CREDENTIALS: &str = "# keys\n[default]\naws_access_key_id = AKIDDEFAULT\n\
        aws_secret_access_key=secret-default ; inline\n\n[work]\n\
        AWS_ACCESS_KEY_ID = AKIDWORK\naws_secret_access_key = secret/work+x=\n\
        aws_session_token = tok\n[sso]\n";
    const CONFIG: &str = "[default]\nregion = eu-west-3\n[profile work]\nregion = ap-south-1\n\
        s3 =\n  max_concurrent_requests = 4\n[profile sso]\nsso_session = corp\n\
        [profile nokeys]\nregion = us-west-2\n";

    #[test]
    fn the_credentials_file_parses_with_comments_and_profiles() {
        let parsed = parse_ini(CREDENTIALS);
        assert_eq!(parsed["default"]["aws_secret_access_key"], "secret-default");
        // Keys are case-insensitive; values keep `=` and `/`.
        assert_eq!(parsed["work"]["aws_access_key_id"], "AKIDWORK");
        assert_eq!(parsed["work"]["aws_secret_access_key"], "secret/work+x=");
        let config = parse_ini(CONFIG);
        assert!(!config["profile work"].contains_key("max_concurrent_requests"));
    }

    #[test]
    fn the_chain_is_env_then_the_profile() {
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIDENV".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret-env".to_owned()),
            "AWS_SESSION_TOKEN" => Some(" session ".to_owned()),
            _ => None,
        };
        let (source, keys) = chain(&sources(&env, Some(CREDENTIALS), None))
            .unwrap()
            .unwrap();
        assert_eq!(source, "aws-env");
        assert_eq!(keys.session_token.as_deref(), Some("session"));
        assert!(!format!("{keys:?}").contains("secret-env"));

        let none = |_: &str| None;
        let (source, keys) = chain(&sources(&none, Some(CREDENTIALS), Some(CONFIG)))
            .unwrap()
            .unwrap();
        assert_eq!(source, "aws-profile:default");
        assert_eq!(keys.access_key_id, "AKIDDEFAULT");
        assert_eq!(
            region(&sources(&none, None, Some(CONFIG))).as_deref(),
            Some("eu-west-3")
        );

        let work = |name: &str| (name == "AWS_PROFILE").then(|| "work".to_owned());
        let at_work = sources(&work, Some(CREDENTIALS), Some(CONFIG));
        let (source, keys) = chain(&at_work).unwrap().unwrap();
        assert_eq!(source, "aws-profile:work");
        assert_eq!(keys.session_token.as_deref(), Some("tok"));
        assert_eq!(region(&at_work).as_deref(), Some("ap-south-1"));

        // Nothing anywhere: none, and the caller says what to set.
        assert_eq!(chain(&sources(&none, None, None)), Ok(None));
    }

    #[test]
    fn unsupported_and_missing_profiles_are_clear_errors() {
        let named = |profile: &'static str| {
            move |name: &str| (name == "AWS_PROFILE").then(|| profile.to_owned())
        };
        let sso = named("sso");
        let error = chain(&sources(&sso, Some(CREDENTIALS), Some(CONFIG))).unwrap_err();
        assert!(error.contains("sso_session"), "{error}");
        let missing = named("nope");
        let error = chain(&sources(&missing, Some(CREDENTIALS), Some(CONFIG))).unwrap_err();
        assert!(error.contains("\"nope\""), "{error}");
        let nokeys = named("nokeys");
        let error = chain(&sources(&nokeys, None, Some(CONFIG))).unwrap_err();
        assert!(error.contains("no aws_access_key_id"), "{error}");
    }

    #[test]
    fn the_region_comes_from_a_standard_endpoint() {
        assert_eq!(
            region_of_endpoint("https://bedrock-runtime.eu-central-1.amazonaws.com").as_deref(),
            Some("eu-central-1")
        );
        assert_eq!(
            region_of_endpoint("https://bedrock-runtime-fips.us-gov-west-1.amazonaws.com/")
                .as_deref(),
            Some("us-gov-west-1")
        );
        assert_eq!(region_of_endpoint("http://127.0.0.1:4000"), None);
    }
}
