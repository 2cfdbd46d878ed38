//! The site configuration in a store that can grow and change without a redeploy: an object in
//! a versioned S3 bucket (`FAILOVER_CONFIG_S3=s3://bucket/key`, see docs/deploy.md for why S3).
//!
//! [`LiveConfig`] reads the document at cold start and, on warm invocations, re-checks it at
//! most every `FAILOVER_CONFIG_REFRESH_SECS` with a conditional GetObject (`If-None-Match` on the
//! last ETag seen; S3 answers 304 Not Modified and no body when it is unchanged, so nothing is
//! parsed). A new version is parsed and validated by the same [`Config::from_document`] as a cold
//! start. If it is invalid, the previous configuration stays in force and ONE warning is logged
//! (`config update rejected`, naming the object version, its ETag and the validation error); the
//! template turns that log line into a metric and an alarm that pages through the alert topic.
//! The rejected ETag becomes the one asked about, so the same bad version is neither parsed nor
//! reported again; the next upload is.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_s3::error::SdkError;
use failover_policy::{Config, ConfigError};
use tracing::{info, warn};

use crate::aws::{port_error, AwsClients};
use crate::ports::{ConfigFetch, ConfigStore, ErrorKind, PortError};

/// How long a warm invocation's configuration re-check may wait for the store.
pub const REFRESH_BOUND: Duration = Duration::from_secs(2);

/// `s3://bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
}

impl S3Location {
    pub fn parse(url: &str) -> Option<Self> {
        let (bucket, key) = url.trim().strip_prefix("s3://")?.split_once('/')?;
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
        (bucket_ok && !key.is_empty()).then(|| Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Which document a decision used: the content hash ([`Config::version`]) and, from S3, the
/// object's `VersionId` and ETag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigVersion {
    pub hash: String,
    pub object_version: Option<String>,
    pub etag: Option<String>,
}

/// A validated configuration and its version.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub version: ConfigVersion,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigLoadError {
    #[error("reading the configuration: {0}")]
    Fetch(PortError),
    #[error("the store answered Not Modified to an unconditional read")]
    NoDocument,
    #[error("version {} is not valid: {source}", .version.as_deref().unwrap_or("(unversioned)"))]
    Invalid {
        version: Option<String>,
        source: ConfigError,
    },
}

/// What one [`LiveConfig::refresh_at`] did.
#[derive(Debug)]
pub enum Refresh {
    /// Checked less than the interval ago: no call made.
    NotDue,
    /// 304: the document is the one already seen.
    NotModified,
    /// A new valid version is now in force.
    Updated(Arc<Loaded>),
    /// A new version failed validation; the previous one stays in force.
    Rejected {
        version: Option<String>,
        error: ConfigError,
    },
    /// The store could not be read; the current configuration stays, re-checked next interval.
    Unreachable(PortError),
}

struct State {
    current: Arc<Loaded>,
    /// The ETag of the last document fetched, valid or not: what `If-None-Match` asks about.
    seen_etag: String,
    checked: Instant,
    parses: u64,
}

/// The configuration in force, re-checked against its store at most every `every`.
pub struct LiveConfig {
    store: Arc<dyn ConfigStore>,
    every: Duration,
    state: Mutex<State>,
    /// A function's own check beyond the document's validation (the evaluator's fan-out must fit
    /// the number of sites), applied to every new version as its cold start applies it.
    check: Box<Check>,
}

type Check = dyn Fn(&Config) -> Result<(), ConfigError> + Send + Sync;
type Rebuild<D> = dyn Fn(&D, &Loaded) -> D + Send + Sync;

fn parse(body: &str, etag: String, version_id: Option<String>) -> Result<Loaded, ConfigLoadError> {
    let config = Config::from_document(body).map_err(|source| ConfigLoadError::Invalid {
        version: version_id.clone(),
        source,
    })?;
    Ok(Loaded {
        version: ConfigVersion {
            hash: config.version(),
            object_version: version_id,
            etag: Some(etag),
        },
        config,
    })
}

impl LiveConfig {
    /// Reads and validates the document; any failure is the cold start's typed error.
    pub async fn cold_start(
        store: Arc<dyn ConfigStore>,
        every: Duration,
    ) -> Result<Self, ConfigLoadError> {
        let ConfigFetch::Document {
            body,
            etag,
            version_id,
        } = store.fetch(None).await.map_err(ConfigLoadError::Fetch)?
        else {
            return Err(ConfigLoadError::NoDocument);
        };
        let loaded = parse(&body, etag.clone(), version_id)?;
        info!(config_version = %loaded.version.hash, object_version = ?loaded.version.object_version, "configuration loaded");
        Ok(Self {
            store,
            every,
            state: Mutex::new(State {
                current: Arc::new(loaded),
                seen_etag: etag,
                checked: Instant::now(),
                parses: 1,
            }),
            check: Box::new(|_| Ok(())),
        })
    }

    /// Adds a check every later version must also pass (the cold start runs its own).
    pub fn with_check(
        mut self,
        check: impl Fn(&Config) -> Result<(), ConfigError> + Send + Sync + 'static,
    ) -> Self {
        self.check = Box::new(check);
        self
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Loaded> {
        self.state.lock().expect("config state").current.clone()
    }

    /// How many documents have been parsed (cold start included).
    pub fn parses(&self) -> u64 {
        self.state.lock().expect("config state").parses
    }

    pub async fn refresh(&self) -> Refresh {
        self.refresh_at(Instant::now()).await
    }

    /// Re-checks the store if the interval has passed since the last check at `now`.
    pub async fn refresh_at(&self, now: Instant) -> Refresh {
        let etag = {
            let st = self.state.lock().expect("config state");
            if now.saturating_duration_since(st.checked) < self.every {
                return Refresh::NotDue;
            }
            st.seen_etag.clone()
        };
        // A warm re-check must never hold an invocation (a tick deciding a failover): the store
        // gets a short bound, and no answer is "unreachable" — the configuration in force stays.
        let fetched = tokio::time::timeout(REFRESH_BOUND, self.store.fetch(Some(&etag)))
            .await
            .unwrap_or_else(|_| {
                Err(PortError::new(
                    ErrorKind::Timeout,
                    "GetObject",
                    format!("no answer within {} ms", REFRESH_BOUND.as_millis()),
                ))
            });
        let mut st = self.state.lock().expect("config state");
        st.checked = now;
        match fetched {
            Ok(ConfigFetch::NotModified) => Refresh::NotModified,
            Err(e) => {
                warn!(error = %e, "configuration store unreachable; the current configuration stays in force");
                Refresh::Unreachable(e)
            }
            Ok(ConfigFetch::Document {
                body,
                etag,
                version_id,
            }) => {
                st.parses += 1;
                st.seen_etag = etag.clone();
                let parsed = parse(&body, etag.clone(), version_id).and_then(|l| {
                    (self.check)(&l.config).map_err(|source| ConfigLoadError::Invalid {
                        version: l.version.object_version.clone(),
                        source,
                    })?;
                    Ok(l)
                });
                match parsed {
                    Ok(loaded) => {
                        let loaded = Arc::new(loaded);
                        info!(config_version = %loaded.version.hash, object_version = ?loaded.version.object_version, previous = %st.current.version.hash, "configuration updated");
                        st.current = loaded.clone();
                        Refresh::Updated(loaded)
                    }
                    Err(ConfigLoadError::Invalid { version, source }) => {
                        let object_version = version.as_deref().unwrap_or("(unversioned)");
                        warn!(
                            object_version,
                            etag = %etag,
                            error = %source,
                            in_force = %st.current.version.hash,
                            "config update rejected"
                        );
                        Refresh::Rejected {
                            version,
                            error: source,
                        }
                    }
                    Err(other) => unreachable!("parse only fails validation: {other}"),
                }
            }
        }
    }
}

/// Deps built at cold start, rebuilt with the new configuration when [`LiveConfig`] takes one.
pub struct Hot<D> {
    live: Option<LiveConfig>,
    deps: Mutex<Arc<D>>,
    with: Box<Rebuild<D>>,
}

impl<D> Hot<D> {
    /// `live` is `None` for a configuration from the environment (it never changes).
    pub fn new(
        deps: D,
        live: Option<LiveConfig>,
        with: impl Fn(&D, &Loaded) -> D + Send + Sync + 'static,
    ) -> Self {
        Self {
            live,
            deps: Mutex::new(Arc::new(deps)),
            with: Box::new(with),
        }
    }

    /// The deps for this invocation (after a re-check of the configuration when one is due).
    pub async fn get(&self) -> Arc<D> {
        self.get_at(Instant::now()).await
    }

    pub async fn get_at(&self, now: Instant) -> Arc<D> {
        if let Some(live) = &self.live {
            if let Refresh::Updated(loaded) = live.refresh_at(now).await {
                let mut deps = self.deps.lock().expect("deps");
                *deps = Arc::new((self.with)(&deps, &loaded));
            }
        }
        self.deps.lock().expect("deps").clone()
    }

    pub fn live(&self) -> Option<&LiveConfig> {
        self.live.as_ref()
    }
}

// ---------------------------------------------------------------- S3

/// [`ConfigStore`] over S3 GetObject of one key (conditional with `If-None-Match`).
pub struct S3ConfigStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
}

impl S3ConfigStore {
    pub fn new(clients: &AwsClients, at: &S3Location) -> Self {
        let sdk = clients.sdk_config();
        // An emulator on an endpoint URL has no per-bucket host names: address it by path.
        let conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        Self::from_client(aws_sdk_s3::Client::from_conf(conf), at)
    }

    pub fn from_client(client: aws_sdk_s3::Client, at: &S3Location) -> Self {
        Self {
            client,
            bucket: at.bucket.clone(),
            key: at.key.clone(),
        }
    }
}

#[async_trait]
impl ConfigStore for S3ConfigStore {
    async fn fetch(&self, if_none_match: Option<&str>) -> Result<ConfigFetch, PortError> {
        let sent = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_if_none_match(if_none_match.map(str::to_owned))
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            // S3 answers a matching If-None-Match with 304 and no body (S3 API Reference,
            // GetObject: "If-None-Match ... otherwise, return a 304 (not modified) error").
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 304 => {
                return Ok(ConfigFetch::NotModified)
            }
            Err(SdkError::ResponseError(e)) if e.raw().status().as_u16() == 304 => {
                return Ok(ConfigFetch::NotModified)
            }
            Err(e) => return Err(port_error("GetObject", &e)),
        };
        let etag = out.e_tag.clone().unwrap_or_default();
        let version_id = out.version_id.clone().filter(|v| v != "null");
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| PortError::new(ErrorKind::Unavailable, "GetObject", e.to_string()))?
            .into_bytes();
        let body = String::from_utf8(bytes.to_vec()).map_err(|_| {
            PortError::new(
                ErrorKind::Other,
                "GetObject",
                "the configuration object is not UTF-8 text",
            )
        })?;
        Ok(ConfigFetch::Document {
            body,
            etag,
            version_id,
        })
    }
}

// ---------------------------------------------------------------- fake

/// A versioned bucket holding one key, as S3 behaves: every put is a new version with its own
/// `VersionId`; the ETag is a digest of the content (the same bytes give the same ETag); a read
/// whose `If-None-Match` is the current ETag gets Not Modified.
#[cfg(any(test, feature = "test-util"))]
#[derive(Default)]
pub struct FakeConfigStore {
    versions: Mutex<Vec<(String, String, String)>>,
    calls: Mutex<(u64, u64)>,
}

#[cfg(any(test, feature = "test-util"))]
impl FakeConfigStore {
    /// Stores a new version; returns its VersionId.
    pub fn put(&self, body: &str) -> String {
        let digest = body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let mut v = self.versions.lock().unwrap();
        let id = format!("v{}-{digest:08x}", v.len() + 1);
        v.push((body.to_owned(), format!("\"{digest:016x}\""), id.clone()));
        id
    }

    /// (GetObject calls, of which answered Not Modified).
    pub fn calls(&self) -> (u64, u64) {
        *self.calls.lock().unwrap()
    }
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl ConfigStore for FakeConfigStore {
    async fn fetch(&self, if_none_match: Option<&str>) -> Result<ConfigFetch, PortError> {
        let latest = self.versions.lock().unwrap().last().cloned();
        let mut calls = self.calls.lock().unwrap();
        calls.0 += 1;
        let Some((body, etag, id)) = latest else {
            return Err(PortError::new(
                ErrorKind::NotFound,
                "GetObject",
                "NoSuchKey: The specified key does not exist.",
            ));
        };
        if if_none_match == Some(etag.as_str()) {
            calls.1 += 1;
            return Ok(ConfigFetch::NotModified);
        }
        Ok(ConfigFetch::Document {
            body,
            etag,
            version_id: Some(id),
        })
    }
}

#[cfg(test)]
mod tests;
