//! Typed, validated configuration from `TENANTRY_*` environment variables and an optional TOML
//! file that mirrors them.
//!
//! Every value is checked at start-up and every problem is reported at once, each naming its
//! variable, so an operator fixes a bad deployment in one round. Secrets (database, Redis and
//! SMTP URLs, key material) are `SecretString`s and never print.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tenantry_domain::rate::RatePolicy;

/// Where the process runs; production turns insecure defaults into start-up errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local development and the embedded default: permissive, self-contained.
    Development,
    /// A real deployment: refuses to start on any insecure or missing setting.
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// The OTLP transport, from `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or
/// `OTEL_EXPORTER_OTLP_PROTOCOL` (the OpenTelemetry names for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// `grpc`: the collector's port 4317 by convention.
    Grpc,
    /// `http/protobuf`: the collector's port 4318, `/v1/traces`; the OpenTelemetry default.
    #[default]
    HttpProtobuf,
}

impl OtlpProtocol {
    /// Parses the value of an `OTEL_EXPORTER_OTLP_*PROTOCOL` variable.
    ///
    /// # Errors
    /// A message naming the values this build speaks (`http/json` is a valid OTLP protocol,
    /// but not built in: saying so beats silently exporting nothing).
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "http/json" => Err("`http/json` is not supported by this build; use `grpc` or `http/protobuf`".to_owned()),
            other => Err(format!("`{other}` is not an OTLP protocol; use `grpc` or `http/protobuf`")),
        }
    }

    /// The variable's spelling of the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Where and how traces are exported (only when `OTEL_EXPORTER_OTLP_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpExport {
    /// The URL spans are sent to, already resolved: for HTTP, the base endpoint with
    /// `/v1/traces` appended, or the traces endpoint as given; for gRPC, the endpoint as given.
    pub endpoint: String,
    /// The transport.
    pub protocol: OtlpProtocol,
    /// `service.name` of the resource: `OTEL_SERVICE_NAME`, else `tenantry`.
    pub service_name: String,
}

impl OtlpExport {
    /// Resolves the traces URL the way the OTLP exporter specification says: a signal-specific
    /// endpoint is used as given; the generic one gets `/v1/traces` appended for HTTP.
    pub fn resolve(
        base: Option<&str>,
        traces: Option<&str>,
        protocol: OtlpProtocol,
        service_name: String,
    ) -> Option<Self> {
        let endpoint = match (traces, base) {
            (Some(traces), _) => traces.to_owned(),
            (None, Some(base)) => match protocol {
                OtlpProtocol::Grpc => base.to_owned(),
                OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
            },
            (None, None) => return None,
        };
        Some(Self { endpoint, protocol, service_name })
    }
}

/// Which browser origins may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No cross-origin browser access (the safe default).
    None,
    /// Any origin, without credentials (refused in production).
    Any,
    /// Exactly these origins (`scheme://host[:port]`).
    List(Vec<String>),
}

/// Which object store `TENANTRY_STORAGE_URL` names, with the adapter's own configuration.
#[derive(Debug, Clone)]
pub enum StorageSection {
    /// A local folder.
    Local(PathBuf),
    /// An S3-compatible bucket.
    S3(tenantry_adapter_storage::S3Config),
    /// This process's memory.
    Memory,
}

/// Everything the server reads from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `TENANTRY_ENV`.
    pub environment: Environment,
    /// `TENANTRY_BIND`.
    pub bind: SocketAddr,
    /// `TENANTRY_METRICS_BIND`: serve `/metrics` here instead of on `bind` (so it need not be
    /// public); `tenantry worker` serves its metrics there too.
    pub metrics_bind: Option<SocketAddr>,
    /// `TENANTRY_DATA_DIR`: where the embedded default keeps its database, files and mail.
    pub data_dir: PathBuf,
    /// `TENANTRY_DATABASE_URL`.
    pub database_url: SecretString,
    /// `TENANTRY_DATABASE_MAX_CONNECTIONS`.
    pub database_max_connections: u32,
    /// `TENANTRY_REDIS_URL`: unset means in-process cache and limits.
    pub redis_url: Option<SecretString>,
    /// `TENANTRY_REDIS_KEY_PREFIX`.
    pub redis_key_prefix: String,
    /// `TENANTRY_STORAGE_URL`.
    pub storage_url: String,
    /// `TENANTRY_S3_ENDPOINT`: an S3-compatible endpoint for `s3://` storage (MinIO, R2…);
    /// unset means AWS itself.
    pub s3_endpoint: Option<String>,
    /// `TENANTRY_SMTP_URL`: unset means mail is written as `.eml` files to `mail_dir`.
    pub smtp_url: Option<SecretString>,
    /// `TENANTRY_MAIL_DIR`.
    pub mail_dir: PathBuf,
    /// `TENANTRY_MAIL_TEMPLATES_DIR`: overrides of the embedded mail templates, read and
    /// checked at load (a file that does not parse stops start-up, named).
    pub mail_templates_dir: Option<PathBuf>,
    /// The mail templates: the embedded defaults with the folder's overrides.
    pub mail_templates: std::sync::Arc<tenantry_application::MailTemplates>,
    /// `TENANTRY_MAIL_RETRY_SCHEDULE`: delays between attempts while the relay is
    /// unavailable; after the last the mail is dead.
    pub mail_retry_schedule: Vec<Duration>,
    /// `TENANTRY_PUBLIC_URL`, without a trailing slash.
    pub public_url: String,
    /// `TENANTRY_JWT_PRIVATE_KEY`, or the content of `TENANTRY_JWT_PRIVATE_KEY_FILE`.
    pub jwt_private_key: Option<SecretString>,
    /// `TENANTRY_WEBHOOK_ALLOW_PRIVATE`.
    pub webhook_allow_private: bool,
    /// `TENANTRY_WEBHOOK_RETRY_SCHEDULE`.
    pub webhook_retry_schedule: Vec<Duration>,
    /// `TENANTRY_WEBHOOK_TIMEOUT_SECS`: how long one delivery attempt may take.
    pub webhook_timeout: Duration,
    /// `TENANTRY_WEBHOOK_DISABLE_AFTER`: how long an endpoint may fail before it is disabled.
    pub webhook_disable_after: Duration,
    /// `TENANTRY_MAX_UPLOAD_BYTES`.
    pub max_upload_bytes: u64,
    /// `TENANTRY_UPLOAD_ALLOWED_TYPES`: sniffed content types an upload may have.
    pub upload_allowed_types: tenantry_domain::files::TypeAllowlist,
    /// `AWS_REGION` (or `AWS_DEFAULT_REGION`): the region S3 requests are signed for.
    pub s3_region: String,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, when given;
    /// otherwise the S3 client looks for credentials itself (web identity, instance metadata).
    pub s3_credentials: Option<tenantry_adapter_storage::S3Credentials>,
    /// `TENANTRY_REQUIRE_VERIFIED_EMAIL`.
    pub require_verified_email: bool,
    /// `TENANTRY_LOGIN_MAX_FAILURES`.
    pub login_max_failures: u32,
    /// `TENANTRY_LOG`: a tracing filter such as `info` or `tenantry=debug,info`.
    pub log_filter: String,
    /// `TENANTRY_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `TENANTRY_CORS_ORIGINS`: comma-separated origins, or `*`.
    pub cors_origins: CorsOrigins,
    /// `TENANTRY_JSON_LIMIT_BYTES`: largest accepted JSON body.
    pub json_limit_bytes: usize,
    /// `TENANTRY_REQUEST_TIMEOUT_SECS`: a request still running after this gets 503.
    pub request_timeout: Duration,
    /// `TENANTRY_SHUTDOWN_TIMEOUT_SECS`: how long SIGTERM waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// `TENANTRY_WORKERS`: HTTP worker threads.
    pub http_workers: usize,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL; unset means no export.
    pub otlp_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the full traces URL, used as given.
    pub otlp_traces_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` or
    /// `http/protobuf` (the default).
    pub otlp_protocol: OtlpProtocol,
    /// `OTEL_SERVICE_NAME`, default `tenantry`: the traces' `service.name`.
    pub otel_service_name: String,
    /// `TENANTRY_MAIL_FROM`: the sender of every e-mail.
    pub mail_from: String,
    /// `TENANTRY_JWT_PREVIOUS_KEYS_FILE`: retired signing keys whose tokens must keep
    /// verifying until they expire (PEMs, one after another).
    pub jwt_previous_keys: Option<SecretString>,
    /// `TENANTRY_ENCRYPTION_KEY`: 32 random bytes (base64) that encrypt secrets at rest (TOTP
    /// secrets); unset in development means a key generated once into the data folder.
    pub encryption_key: Option<SecretString>,
    /// `TENANTRY_TRUSTED_PROXIES`: proxies whose `x-forwarded-for` is believed.
    pub trusted_proxies: Vec<crate::http::client_ip::Network>,
    /// `TENANTRY_PASSWORD_HASH_CONCURRENCY`: argon2 hashes computed at once.
    pub password_hash_concurrency: usize,
    /// Plans, quotas and rate limits (`TENANTRY_PLANS`, `TENANTRY_DEFAULT_PLAN`,
    /// `TENANTRY_METER_API_CALLS`, `TENANTRY_RATE_LIMIT_*`).
    pub limits: LimitSettings,
}

/// One problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The variable (or config-file key) at fault.
    pub variable: String,
    /// What is wrong with it, and what would be right.
    pub message: String,
}

/// Every problem found while loading, so they can all be fixed in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Invalid values (any environment).
    pub invalid: Vec<ConfigProblem>,
    /// Settings that are legal but insecure or missing for `TENANTRY_ENV=production`.
    pub insecure: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.invalid.is_empty() {
            writeln!(f, "invalid configuration ({} problem(s)):", self.invalid.len())?;
            for problem in &self.invalid {
                writeln!(f, "  - {}: {}", problem.variable, problem.message)?;
            }
        }
        if !self.insecure.is_empty() {
            writeln!(
                f,
                "TENANTRY_ENV=production refuses to start with these insecure or missing settings ({}):",
                self.insecure.len()
            )?;
            for problem in &self.insecure {
                writeln!(f, "  - {}: {}", problem.variable, problem.message)?;
            }
        }
        Ok(())
    }
}

/// The standard AWS variables the S3 store reads through the settings (so a config file or a
/// test can give them like any other).
pub const AWS_VARIABLES: [&str; 5] =
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"];

/// The OpenTelemetry variables read through the settings (validated at start-up). The
/// exporter and the SDK read the others themselves (`OTEL_EXPORTER_OTLP_HEADERS`,
/// `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`…).
pub const OTEL_VARIABLES: [&str; 5] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SERVICE_NAME",
];

/// Every variable this version understands; anything else starting with `TENANTRY_` is
/// reported as a likely typo.
pub const KNOWN_VARIABLES: &[&str] = &[
    "TENANTRY_ENV",
    "TENANTRY_CONFIG",
    "TENANTRY_BIND",
    "TENANTRY_METRICS_BIND",
    "TENANTRY_DATA_DIR",
    "TENANTRY_DATABASE_URL",
    "TENANTRY_DATABASE_MAX_CONNECTIONS",
    "TENANTRY_REDIS_URL",
    "TENANTRY_REDIS_KEY_PREFIX",
    "TENANTRY_STORAGE_URL",
    "TENANTRY_S3_ENDPOINT",
    "TENANTRY_SMTP_URL",
    "TENANTRY_MAIL_DIR",
    "TENANTRY_MAIL_TEMPLATES_DIR",
    "TENANTRY_MAIL_RETRY_SCHEDULE",
    "TENANTRY_PUBLIC_URL",
    "TENANTRY_JWT_PRIVATE_KEY",
    "TENANTRY_JWT_PRIVATE_KEY_FILE",
    "TENANTRY_WEBHOOK_ALLOW_PRIVATE",
    "TENANTRY_WEBHOOK_RETRY_SCHEDULE",
    "TENANTRY_WEBHOOK_TIMEOUT_SECS",
    "TENANTRY_WEBHOOK_DISABLE_AFTER",
    "TENANTRY_MAX_UPLOAD_BYTES",
    "TENANTRY_UPLOAD_ALLOWED_TYPES",
    "TENANTRY_REQUIRE_VERIFIED_EMAIL",
    "TENANTRY_LOGIN_MAX_FAILURES",
    "TENANTRY_LOG",
    "TENANTRY_LOG_FORMAT",
    "TENANTRY_CORS_ORIGINS",
    "TENANTRY_JSON_LIMIT_BYTES",
    "TENANTRY_REQUEST_TIMEOUT_SECS",
    "TENANTRY_SHUTDOWN_TIMEOUT_SECS",
    "TENANTRY_WORKERS",
    "TENANTRY_MAIL_FROM",
    "TENANTRY_JWT_PREVIOUS_KEYS_FILE",
    "TENANTRY_PASSWORD_HASH_CONCURRENCY",
    "TENANTRY_ENCRYPTION_KEY",
    "TENANTRY_TRUSTED_PROXIES",
    "TENANTRY_PLANS",
    "TENANTRY_DEFAULT_PLAN",
    "TENANTRY_METER_API_CALLS",
    "TENANTRY_RATE_LIMIT_ANONYMOUS",
    "TENANTRY_RATE_LIMIT_PRINCIPAL",
    "TENANTRY_RATE_LIMIT_ORG",
];

/// The raw `name → value` pairs settings are parsed from: the config file's keys (upper-cased,
/// prefixed) overlaid by the process environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    values: HashMap<String, String>,
    /// Problems found while reading the sources themselves (bad file, unknown keys).
    problems: Vec<ConfigProblem>,
    /// `TENANTRY_*` names nobody reads: probably typos.
    pub unknown: Vec<String>,
}

impl Sources {
    /// Sources from explicit pairs (tests, embedding services).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut sources = Self::default();
        for (name, value) in pairs {
            sources.insert(name.into(), value.into());
        }
        sources
    }

    /// The process environment, over the TOML file named by `config_file` or
    /// `TENANTRY_CONFIG` when one is given.
    pub fn from_process(config_file: Option<&Path>) -> Self {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let file = config_file
            .map(Path::to_path_buf)
            .or_else(|| env.iter().find(|(name, _)| name == "TENANTRY_CONFIG").map(|(_, value)| PathBuf::from(value)));
        let mut sources = Self::default();
        if let Some(file) = file {
            sources.merge_file(&file);
        }
        for (name, value) in env {
            // An empty variable counts as unset, so it does not hide the file's value.
            if value.trim().is_empty() {
                continue;
            }
            if name.starts_with("TENANTRY_")
                || OTEL_VARIABLES.contains(&name.as_str())
                || name == "RUST_LOG"
                || AWS_VARIABLES.contains(&name.as_str())
            {
                sources.insert(name, value);
            }
        }
        sources
    }

    fn insert(&mut self, name: String, value: String) {
        let known = KNOWN_VARIABLES.contains(&name.as_str())
            || OTEL_VARIABLES.contains(&name.as_str())
            || name == "RUST_LOG"
            || AWS_VARIABLES.contains(&name.as_str());
        // Variables read by the test suites and the benchmarks, not by the server.
        let tooling =
            ["TENANTRY_TEST_", "TENANTRY_BENCH_", "TENANTRY_CI_"].iter().any(|prefix| name.starts_with(prefix));
        if !known && !tooling && !self.unknown.contains(&name) {
            self.unknown.push(name.clone());
        }
        self.values.insert(name, value);
    }

    /// Reads a TOML file whose keys are the variable names without `TENANTRY_`, lower-cased
    /// (`bind = "0.0.0.0:8080"`); the environment still wins over it.
    fn merge_file(&mut self, path: &Path) {
        let problem = |message: String| ConfigProblem { variable: "TENANTRY_CONFIG".to_owned(), message };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) => {
                self.problems.push(problem(format!("cannot read {}: {err}", path.display())));
                return;
            }
        };
        let table: BTreeMap<String, toml::Value> = match toml::from_str(&text) {
            Ok(table) => table,
            Err(err) => {
                self.problems.push(problem(format!("{} is not valid TOML: {err}", path.display())));
                return;
            }
        };
        for (key, value) in table {
            let name = format!("TENANTRY_{}", key.to_ascii_uppercase());
            if !KNOWN_VARIABLES.contains(&name.as_str()) || name == "TENANTRY_CONFIG" {
                self.problems.push(problem(format!("{}: unknown key `{key}`", path.display())));
                continue;
            }
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
                other => {
                    self.problems.push(problem(format!(
                        "{}: `{key}` must be a string, integer, boolean or array, not {}",
                        path.display(),
                        other.type_str()
                    )));
                    continue;
                }
            };
            self.values.insert(name, text);
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str).filter(|value| !value.trim().is_empty())
    }
}

/// The plans on offer and the rate limit of each route group; `None` turns a group's limit off.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// `TENANTRY_PLANS` (a JSON array of `{name, limits}`), or the built-in catalog, with
    /// `TENANTRY_DEFAULT_PLAN` for new organizations.
    pub catalog: tenantry_domain::quota::PlanCatalog,
    /// `TENANTRY_METER_API_CALLS`: count authenticated org requests against `api_calls`.
    pub meter_api_calls: bool,
    /// `TENANTRY_RATE_LIMIT_ANONYMOUS`: per client address on routes without credentials.
    pub anonymous: Option<RatePolicy>,
    /// `TENANTRY_RATE_LIMIT_PRINCIPAL`: per user or API key.
    pub principal: Option<RatePolicy>,
    /// `TENANTRY_RATE_LIMIT_ORG`: per organization, over all its callers.
    pub org: Option<RatePolicy>,
}

/// One plan of `TENANTRY_PLANS`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanSetting {
    name: String,
    #[serde(default)]
    limits: BTreeMap<String, Option<u64>>,
}

impl LimitSettings {
    fn parse(p: &mut Parser<'_>) -> Self {
        let policy = |p: &mut Parser<'_>, name: &str, default: &str| {
            let raw = p.string(name, default);
            RatePolicy::parse(&raw).unwrap_or_else(|err| {
                p.fail(name, format!("`{raw}`: {err}"));
                RatePolicy::parse(default).ok().flatten()
            })
        };
        let anonymous = policy(p, "TENANTRY_RATE_LIMIT_ANONYMOUS", "120/min");
        let principal = policy(p, "TENANTRY_RATE_LIMIT_PRINCIPAL", "1200/min");
        let org = policy(p, "TENANTRY_RATE_LIMIT_ORG", "6000/min");
        let meter_api_calls = p.bool("TENANTRY_METER_API_CALLS", true);
        let builtin = tenantry_domain::quota::PlanCatalog::builtin();
        let default_plan = p.string("TENANTRY_DEFAULT_PLAN", builtin.default_plan());
        let plans = match p.sources.get("TENANTRY_PLANS") {
            None => builtin.plans().to_vec(),
            Some(raw) => match parse_plans(raw) {
                Ok(plans) => plans,
                Err(message) => {
                    p.fail("TENANTRY_PLANS", message);
                    builtin.plans().to_vec()
                }
            },
        };
        let catalog = tenantry_domain::quota::PlanCatalog::new(plans, &default_plan).unwrap_or_else(|err| {
            let variable = match err {
                tenantry_domain::quota::PlanError::UnknownDefault(_) => "TENANTRY_DEFAULT_PLAN",
                _ => "TENANTRY_PLANS",
            };
            p.fail(variable, err.to_string());
            builtin
        });
        Self { catalog, meter_api_calls, anonymous, principal, org }
    }
}

fn parse_plans(raw: &str) -> Result<Vec<tenantry_domain::quota::Plan>, String> {
    use tenantry_domain::quota::{Limits, Plan, Quota};
    let settings: Vec<PlanSetting> = serde_json::from_str(raw)
        .map_err(|err| format!("not a JSON array of {{\"name\", \"limits\": {{\"members\": 5, …}}}}: {err}"))?;
    let mut plans = Vec::new();
    for setting in settings {
        let mut limits = Limits::default();
        for (quota, limit) in setting.limits {
            let quota = Quota::parse(&quota).ok_or_else(|| {
                let known: Vec<&str> = Quota::ALL.iter().map(|q| q.as_str()).collect();
                format!("plan `{}`: unknown quota `{quota}` (known: {})", setting.name, known.join(", "))
            })?;
            limits.set(quota, limit);
        }
        if plans.iter().any(|plan: &Plan| plan.name == setting.name) {
            return Err(format!("plan `{}` is defined twice", setting.name));
        }
        plans.push(Plan { name: setting.name, limits });
    }
    Ok(plans)
}

/// Collects problems while parsing, so one pass reports all of them.
struct Parser<'a> {
    sources: &'a Sources,
    invalid: Vec<ConfigProblem>,
}

impl Parser<'_> {
    fn fail(&mut self, variable: &str, message: impl Into<String>) {
        self.invalid.push(ConfigProblem { variable: variable.to_owned(), message: message.into() });
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.sources.get(name).unwrap_or(default).trim().to_owned()
    }

    fn parsed<T: std::str::FromStr>(&mut self, name: &str, default: T, what: &str) -> T {
        match self.sources.get(name) {
            None => default,
            Some(raw) => raw.trim().parse().unwrap_or_else(|_| {
                self.fail(name, format!("`{raw}` is not {what}"));
                default
            }),
        }
    }

    fn bool(&mut self, name: &str, default: bool) -> bool {
        match self.sources.get(name).map(|raw| raw.trim().to_ascii_lowercase()) {
            None => default,
            Some(raw) => match raw.as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    self.fail(name, format!("`{raw}` is not a boolean (true or false)"));
                    default
                }
            },
        }
    }

    fn ranged<T>(&mut self, name: &str, default: T, min: T, max: T, what: &str) -> T
    where
        T: std::str::FromStr + PartialOrd + Copy + fmt::Display,
    {
        let value = self.parsed(name, default, what);
        if value < min || value > max {
            self.fail(name, format!("{value} is out of range ({min} to {max})"));
            return default;
        }
        value
    }
}

impl Settings {
    /// Parses and validates `sources`; in production, also refuses insecure settings.
    ///
    /// # Errors
    /// [`ConfigError`] listing every invalid value and every insecure production setting.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let mut p = Parser { sources, invalid: sources.problems.clone() };

        let environment = match p.string("TENANTRY_ENV", "development").to_ascii_lowercase().as_str() {
            "development" | "dev" => Environment::Development,
            "production" | "prod" => Environment::Production,
            other => {
                p.fail("TENANTRY_ENV", format!("`{other}` is not `development` or `production`"));
                Environment::Development
            }
        };
        let default_bind = match environment {
            Environment::Development => "127.0.0.1:8080",
            Environment::Production => "0.0.0.0:8080",
        };
        let bind_raw = p.string("TENANTRY_BIND", default_bind);
        let bind = bind_raw.parse().unwrap_or_else(|_| {
            p.fail("TENANTRY_BIND", format!("`{bind_raw}` is not an address:port such as 127.0.0.1:8080"));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });

        let metrics_bind = match sources.get("TENANTRY_METRICS_BIND").map(str::trim) {
            None => None,
            Some(raw) => match raw.parse::<SocketAddr>() {
                Ok(address) => Some(address),
                Err(_) => {
                    p.fail("TENANTRY_METRICS_BIND", format!("`{raw}` is not an address:port such as 127.0.0.1:9464"));
                    None
                }
            },
        };

        let data_dir = PathBuf::from(p.string("TENANTRY_DATA_DIR", "data"));
        let default_db = format!("sqlite://{}?mode=rwc", data_dir.join("tenantry.db").display());
        let database_url = p.string("TENANTRY_DATABASE_URL", &default_db);
        if tenantry_adapter_sql::Backend::of_url(&database_url).is_none() {
            p.fail("TENANTRY_DATABASE_URL", "must start with postgres://, postgresql:// or sqlite://");
        }
        let database_max_connections = p.ranged("TENANTRY_DATABASE_MAX_CONNECTIONS", 16, 1, 1000, "a number");

        let redis_url = sources.get("TENANTRY_REDIS_URL").map(|url| url.trim().to_owned());
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            p.fail("TENANTRY_REDIS_URL", "must start with redis:// or rediss://");
        }
        let redis_key_prefix = p.string("TENANTRY_REDIS_KEY_PREFIX", "tenantry:");

        let default_storage = format!("file://{}", data_dir.join("files").display());
        let storage_url = p.string("TENANTRY_STORAGE_URL", &default_storage);
        if !["file://", "s3://", "memory://"].iter().any(|scheme| storage_url.starts_with(scheme)) {
            p.fail("TENANTRY_STORAGE_URL", "must start with file://, s3:// or memory://");
        }

        let s3_endpoint = sources.get("TENANTRY_S3_ENDPOINT").map(|url| url.trim().trim_end_matches('/').to_owned());
        if let Some(endpoint) = &s3_endpoint
            && !is_http_url(endpoint)
        {
            p.fail("TENANTRY_S3_ENDPOINT", format!("`{endpoint}` is not an http(s):// URL"));
        }

        let smtp_url = sources.get("TENANTRY_SMTP_URL").map(|url| url.trim().to_owned());
        if let Some(url) = &smtp_url
            && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
        {
            p.fail("TENANTRY_SMTP_URL", "must start with smtp:// or smtps://");
        } else if let Some(url) = &smtp_url
            && let Err(err) = tenantry_adapter_mail::smtp_security(url)
        {
            // The adapter's message names the scheme or the `tls` value, never the password.
            p.fail("TENANTRY_SMTP_URL", format!("{:#}", anyhow::Error::new(err)));
        }
        let mail_dir =
            sources.get("TENANTRY_MAIL_DIR").map_or_else(|| data_dir.join("mail"), |dir| PathBuf::from(dir.trim()));
        let mail_templates_dir = sources.get("TENANTRY_MAIL_TEMPLATES_DIR").map(|dir| PathBuf::from(dir.trim()));
        let mail_templates = match mail_templates_dir.as_deref().map(load_mail_templates) {
            None => std::sync::Arc::new(tenantry_application::MailTemplates::embedded()),
            Some(Ok(templates)) => std::sync::Arc::new(templates),
            Some(Err(message)) => {
                p.fail("TENANTRY_MAIL_TEMPLATES_DIR", message);
                std::sync::Arc::new(tenantry_application::MailTemplates::embedded())
            }
        };
        let mail_schedule_raw = p.string("TENANTRY_MAIL_RETRY_SCHEDULE", "10s,1m,5m,15m,30m,1h,2h,4h,8h,12h");
        let mail_retry_schedule = match parse_schedule(&mail_schedule_raw) {
            Ok(schedule) => schedule,
            Err(message) => {
                p.fail("TENANTRY_MAIL_RETRY_SCHEDULE", message);
                Vec::new()
            }
        };

        // Unset: where this process can be reached locally, so printed and e-mailed links work
        // out of the box on another port too.
        let local_host = match bind.ip() {
            ip if ip.is_unspecified() && ip.is_ipv6() => "::1".to_owned(),
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            ip => ip.to_string(),
        };
        let default_public = if bind.is_ipv6() {
            format!("http://[{local_host}]:{}", bind.port())
        } else {
            format!("http://{local_host}:{}", bind.port())
        };
        let public_url = p.string("TENANTRY_PUBLIC_URL", &default_public).trim_end_matches('/').to_owned();
        if !is_http_url(&public_url) {
            p.fail("TENANTRY_PUBLIC_URL", format!("`{public_url}` is not an http(s):// URL"));
        }

        let jwt_private_key =
            match (sources.get("TENANTRY_JWT_PRIVATE_KEY"), sources.get("TENANTRY_JWT_PRIVATE_KEY_FILE")) {
                (Some(_), Some(_)) => {
                    p.fail(
                        "TENANTRY_JWT_PRIVATE_KEY",
                        "set either TENANTRY_JWT_PRIVATE_KEY or TENANTRY_JWT_PRIVATE_KEY_FILE, not both",
                    );
                    None
                }
                (Some(key), None) => Some(SecretString::from(key.to_owned())),
                (None, Some(file)) => match std::fs::read_to_string(file.trim()) {
                    Ok(key) => Some(SecretString::from(key)),
                    Err(err) => {
                        p.fail("TENANTRY_JWT_PRIVATE_KEY_FILE", format!("cannot read `{}`: {err}", file.trim()));
                        None
                    }
                },
                (None, None) => None,
            };

        let webhook_allow_private = p.bool("TENANTRY_WEBHOOK_ALLOW_PRIVATE", false);
        let schedule_raw = p.string("TENANTRY_WEBHOOK_RETRY_SCHEDULE", "5s,5m,30m,2h,5h,10h,10h");
        let webhook_retry_schedule = match parse_schedule(&schedule_raw) {
            Ok(schedule) => schedule,
            Err(message) => {
                p.fail("TENANTRY_WEBHOOK_RETRY_SCHEDULE", message);
                Vec::new()
            }
        };
        let webhook_timeout =
            Duration::from_secs(p.ranged("TENANTRY_WEBHOOK_TIMEOUT_SECS", 15_u64, 1, 60, "a number of seconds"));
        let disable_raw = p.string("TENANTRY_WEBHOOK_DISABLE_AFTER", "5d");
        let webhook_disable_after = match parse_schedule(&disable_raw).as_deref() {
            Ok([period]) => *period,
            Ok(_) => {
                p.fail("TENANTRY_WEBHOOK_DISABLE_AFTER", "one duration such as 5d or 12h".to_owned());
                Duration::ZERO
            }
            Err(message) => {
                p.fail("TENANTRY_WEBHOOK_DISABLE_AFTER", message.clone());
                Duration::ZERO
            }
        };
        let max_upload_bytes = p.ranged("TENANTRY_MAX_UPLOAD_BYTES", 104_857_600_u64, 1, 1 << 40, "a number of bytes");
        let upload_allowed_types = match sources.get("TENANTRY_UPLOAD_ALLOWED_TYPES") {
            None => tenantry_domain::files::TypeAllowlist::default(),
            Some(raw) => tenantry_domain::files::TypeAllowlist::parse(raw).unwrap_or_else(|err| {
                p.fail("TENANTRY_UPLOAD_ALLOWED_TYPES", err.to_string());
                tenantry_domain::files::TypeAllowlist::default()
            }),
        };
        let aws = |name: &str| sources.get(name).map(|value| value.trim().to_owned()).filter(|v| !v.is_empty());
        let s3_region =
            aws("AWS_REGION").or_else(|| aws("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".to_owned());
        let s3_credentials = match (aws("AWS_ACCESS_KEY_ID"), aws("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret)) => Some(tenantry_adapter_storage::S3Credentials {
                access_key_id,
                secret_access_key: SecretString::from(secret),
                session_token: aws("AWS_SESSION_TOKEN").map(SecretString::from),
            }),
            (None, None) => None,
            _ => {
                p.fail("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together".to_owned());
                None
            }
        };
        if let Some(bucket) = storage_url.strip_prefix("s3://")
            && bucket.split('/').next().is_none_or(str::is_empty)
        {
            p.fail("TENANTRY_STORAGE_URL", "s3:// needs a bucket: s3://<bucket>[/<prefix>]");
        }
        let require_verified_email = p.bool("TENANTRY_REQUIRE_VERIFIED_EMAIL", false);
        let login_max_failures = p.ranged("TENANTRY_LOGIN_MAX_FAILURES", 5_u32, 1, 1000, "a number");

        // `RUST_LOG` is the usual fallback: `TENANTRY_LOG` wins when both are set.
        let log_variable = if sources.get("TENANTRY_LOG").is_none() && sources.get("RUST_LOG").is_some() {
            "RUST_LOG"
        } else {
            "TENANTRY_LOG"
        };
        let log_filter = p.string(log_variable, "info");
        if tracing_subscriber::EnvFilter::try_new(&log_filter).is_err() {
            p.fail(log_variable, format!("`{log_filter}` is not a log filter such as `info` or `tenantry=debug,warn`"));
        }
        let log_format = match p.string("TENANTRY_LOG_FORMAT", "auto").to_ascii_lowercase().as_str() {
            "auto" => LogFormat::Auto,
            "json" => LogFormat::Json,
            "pretty" | "text" => LogFormat::Pretty,
            other => {
                p.fail("TENANTRY_LOG_FORMAT", format!("`{other}` is not auto, json or pretty"));
                LogFormat::Auto
            }
        };

        let cors_raw = p.string("TENANTRY_CORS_ORIGINS", "");
        let cors_origins = match parse_cors(&cors_raw) {
            Ok(origins) => origins,
            Err(message) => {
                p.fail("TENANTRY_CORS_ORIGINS", message);
                CorsOrigins::None
            }
        };
        let json_limit_bytes =
            p.ranged("TENANTRY_JSON_LIMIT_BYTES", 1_048_576_usize, 1024, 64 << 20, "a number of bytes");
        let request_timeout =
            Duration::from_secs(p.ranged("TENANTRY_REQUEST_TIMEOUT_SECS", 30_u64, 1, 3600, "a number of seconds"));
        let shutdown_timeout =
            Duration::from_secs(p.ranged("TENANTRY_SHUTDOWN_TIMEOUT_SECS", 30_u64, 1, 3600, "a number of seconds"));
        let default_workers = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let http_workers = p.ranged("TENANTRY_WORKERS", default_workers, 1, 512, "a number");
        let mail_from = p.string("TENANTRY_MAIL_FROM", "Tenantry <no-reply@localhost>");
        if !mail_from.contains('@') {
            p.fail("TENANTRY_MAIL_FROM", format!("`{mail_from}` is not a mailbox such as `Acme <no-reply@acme.com>`"));
        }
        let jwt_previous_keys = match sources.get("TENANTRY_JWT_PREVIOUS_KEYS_FILE") {
            None => None,
            Some(file) => match std::fs::read_to_string(file.trim()) {
                Ok(pems) => Some(SecretString::from(pems)),
                Err(err) => {
                    p.fail("TENANTRY_JWT_PREVIOUS_KEYS_FILE", format!("cannot read `{}`: {err}", file.trim()));
                    None
                }
            },
        };
        let encryption_key =
            sources.get("TENANTRY_ENCRYPTION_KEY").map(|key| SecretString::from(key.trim().to_owned()));
        let mut trusted_proxies = Vec::new();
        for raw in p.string("TENANTRY_TRUSTED_PROXIES", "").split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match crate::http::client_ip::Network::parse(raw) {
                Ok(network) => trusted_proxies.push(network),
                Err(message) => p.fail("TENANTRY_TRUSTED_PROXIES", message),
            }
        }
        let default_hashers = default_workers.saturating_sub(1).max(1);
        let password_hash_concurrency =
            p.ranged("TENANTRY_PASSWORD_HASH_CONCURRENCY", default_hashers, 1, 256, "a number");
        let otlp_endpoint = sources.get("OTEL_EXPORTER_OTLP_ENDPOINT").map(|url| url.trim().to_owned());
        let otlp_traces_endpoint = sources.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").map(|url| url.trim().to_owned());
        for (variable, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp_endpoint),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &otlp_traces_endpoint),
        ] {
            if let Some(endpoint) = value
                && !is_http_url(endpoint)
            {
                p.fail(variable, format!("`{endpoint}` is not an http(s):// URL"));
            }
        }
        // The signal-specific variable wins, as the OpenTelemetry specification says.
        let protocol_variable = if sources.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").is_some() {
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
        } else {
            "OTEL_EXPORTER_OTLP_PROTOCOL"
        };
        let otlp_protocol = match sources.get(protocol_variable) {
            None => OtlpProtocol::default(),
            Some(raw) => OtlpProtocol::parse(raw).unwrap_or_else(|message| {
                p.fail(protocol_variable, message);
                OtlpProtocol::default()
            }),
        };
        let otel_service_name = sources
            .get("OTEL_SERVICE_NAME")
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .unwrap_or("tenantry")
            .to_owned();

        let limits = LimitSettings::parse(&mut p);

        let settings = Self {
            limits,
            environment,
            bind,
            metrics_bind,
            data_dir,
            database_url: SecretString::from(database_url),
            database_max_connections,
            redis_url: redis_url.map(SecretString::from),
            redis_key_prefix,
            storage_url,
            s3_endpoint,
            smtp_url: smtp_url.map(SecretString::from),
            mail_dir,
            mail_templates_dir,
            mail_templates,
            mail_retry_schedule,
            public_url,
            jwt_private_key,
            webhook_allow_private,
            webhook_retry_schedule,
            webhook_timeout,
            webhook_disable_after,
            max_upload_bytes,
            upload_allowed_types,
            s3_region,
            s3_credentials,
            require_verified_email,
            login_max_failures,
            log_filter,
            log_format,
            cors_origins,
            json_limit_bytes,
            request_timeout,
            shutdown_timeout,
            http_workers,
            otlp_endpoint,
            otlp_traces_endpoint,
            otlp_protocol,
            otel_service_name,
            mail_from,
            jwt_previous_keys,
            password_hash_concurrency,
            encryption_key,
            trusted_proxies,
        };
        let insecure = if environment == Environment::Production { settings.production_problems() } else { Vec::new() };
        if p.invalid.is_empty() && insecure.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError { invalid: p.invalid, insecure })
        }
    }

    /// Every setting that is fine for a laptop but wrong for a real deployment.
    fn production_problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut flag = |variable: &str, message: &str| {
            problems.push(ConfigProblem { variable: variable.to_owned(), message: message.to_owned() });
        };
        if tenantry_adapter_sql::Backend::of_url(self.database_url.expose_secret())
            == Some(tenantry_adapter_sql::Backend::Sqlite)
        {
            flag("TENANTRY_DATABASE_URL", "SQLite is for the embedded default; use postgres://");
        }
        if self.redis_url.is_none() {
            flag(
                "TENANTRY_REDIS_URL",
                "unset: in-process rate limits, quotas and revocations do not hold across replicas; set redis://",
            );
        }
        if self.jwt_private_key.is_none() {
            flag(
                "TENANTRY_JWT_PRIVATE_KEY",
                "missing: set TENANTRY_JWT_PRIVATE_KEY or TENANTRY_JWT_PRIVATE_KEY_FILE so every replica signs with the same managed key",
            );
        }
        if self.encryption_key.is_none() {
            flag(
                "TENANTRY_ENCRYPTION_KEY",
                "missing: set 32 random bytes in base64 (openssl rand -base64 32) so every replica decrypts secrets at rest",
            );
        }
        match self.smtp_url.as_ref().map(ExposeSecret::expose_secret) {
            None => flag(
                "TENANTRY_SMTP_URL",
                "unset: mail would be written to a folder and never delivered; set smtp(s)://",
            ),
            Some(url) if smtp_in_clear(url) => flag(
                "TENANTRY_SMTP_URL",
                "smtp:// without ?tls=required sends mail (and the relay password) unencrypted to a remote host; use smtps:// or ?tls=required",
            ),
            Some(_) => {}
        }
        if self.storage_url.starts_with("file://") || self.storage_url.starts_with("memory://") {
            flag(
                "TENANTRY_STORAGE_URL",
                "local storage is not shared between replicas and is lost with the container; use s3://",
            );
        }
        if plain_http_off_host(self.s3_endpoint.as_deref()) {
            flag(
                "TENANTRY_S3_ENDPOINT",
                "http:// to another host sends files, credentials and signed URLs unencrypted; use https://",
            );
        }
        if !self.public_url.starts_with("https://") {
            flag("TENANTRY_PUBLIC_URL", "must be the public https:// URL, used in e-mailed links");
        }
        if self.cors_origins == CorsOrigins::Any {
            flag(
                "TENANTRY_CORS_ORIGINS",
                "`*` lets any web site call the API from its visitors' browsers; list the allowed origins",
            );
        }
        if self.webhook_allow_private {
            flag(
                "TENANTRY_WEBHOOK_ALLOW_PRIVATE",
                "true lets tenants make the server call private and loopback addresses (SSRF)",
            );
        }
        if plain_http_off_host(self.otlp_endpoint.as_deref())
            || plain_http_off_host(self.otlp_traces_endpoint.as_deref())
        {
            flag(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "traces would leave the host unencrypted; use https:// or a local collector",
            );
        }
        problems
    }

    /// Where traces go, when an OTLP endpoint is set.
    pub fn otlp_export(&self) -> Option<OtlpExport> {
        OtlpExport::resolve(
            self.otlp_endpoint.as_deref(),
            self.otlp_traces_endpoint.as_deref(),
            self.otlp_protocol,
            self.otel_service_name.clone(),
        )
    }

    /// Whether the database is the embedded SQLite file.
    pub fn uses_sqlite(&self) -> bool {
        tenantry_adapter_sql::Backend::of_url(self.database_url.expose_secret())
            == Some(tenantry_adapter_sql::Backend::Sqlite)
    }
}

fn is_http_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
}

/// Whether `url` is plain SMTP (no TLS) to a host other than this machine: a local relay or
/// a test sink may speak plain SMTP, a remote relay may not. The mail adapter reads the URL
/// the way it will connect (`?tls=starttls` is STARTTLS, as `?tls=required`).
fn smtp_in_clear(url: &str) -> bool {
    matches!(tenantry_adapter_mail::smtp_security(url), Ok((tenantry_adapter_mail::SmtpSecurity::Plain, _)))
        && !is_loopback_url(url)
}

/// Whether `endpoint` is `http://` to a host other than this one (traffic leaves unencrypted).
fn plain_http_off_host(endpoint: Option<&str>) -> bool {
    endpoint.is_some_and(|endpoint| endpoint.starts_with("http://") && !is_loopback_url(endpoint))
}

fn is_loopback_url(endpoint: &str) -> bool {
    url::Url::parse(endpoint).ok().and_then(|url| url.host_str().map(str::to_owned)).is_some_and(|host| {
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) || host == "[::1]"
    })
}

/// The templates of `dir` (every regular file, by name) over the embedded defaults; the
/// message names the folder and the file at fault.
fn load_mail_templates(dir: &std::path::Path) -> Result<tenantry_application::MailTemplates, String> {
    let entries = std::fs::read_dir(dir).map_err(|err| format!("cannot read `{}`: {err}", dir.display()))?;
    let mut overrides = std::collections::BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|err| format!("cannot read `{}`: {err}", dir.display()))?;
        let path = entry.path();
        // Editors' and `ls`' leftovers (hidden files, folders) are not templates.
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let source =
            std::fs::read_to_string(&path).map_err(|err| format!("cannot read `{}`: {err}", path.display()))?;
        overrides.insert(name, source);
    }
    tenantry_application::MailTemplates::new(overrides).map_err(|err| format!("{}/{err}", dir.display()))
}

/// Parses `5s,5m,30m,2h` into durations.
pub fn parse_schedule(raw: &str) -> Result<Vec<Duration>, String> {
    let mut schedule = Vec::new();
    for part in raw.split(',').map(str::trim) {
        let (number, unit) = part.split_at(part.find(|c: char| !c.is_ascii_digit()).unwrap_or(part.len()));
        let value: u64 = number.parse().map_err(|_| format!("`{part}` is not a duration such as 30s, 5m, 2h or 1d"))?;
        let seconds = match unit {
            "s" => value,
            "m" => value * 60,
            "h" => value * 3600,
            "d" => value * 86_400,
            _ => {
                return Err(format!("`{part}` is not a duration such as 30s, 5m, 2h or 1d"));
            }
        };
        if seconds == 0 {
            return Err(format!("`{part}`: retry delays must be positive"));
        }
        schedule.push(Duration::from_secs(seconds));
    }
    if schedule.len() > 30 {
        return Err("at most 30 retries".to_owned());
    }
    Ok(schedule)
}

fn parse_cors(raw: &str) -> Result<CorsOrigins, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(CorsOrigins::None);
    }
    if raw == "*" {
        return Ok(CorsOrigins::Any);
    }
    let mut origins = Vec::new();
    for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let parsed = url::Url::parse(origin)
            .map_err(|_| format!("`{origin}` is not an origin such as https://app.example.com"))?;
        let is_origin = matches!(parsed.scheme(), "http" | "https")
            && parsed.host().is_some()
            && parsed.path() == "/"
            && !origin.ends_with('/')
            && parsed.query().is_none();
        if !is_origin {
            return Err(format!(
                "`{origin}` is not an origin such as https://app.example.com (no path, no trailing slash)"
            ));
        }
        origins.push(origin.to_owned());
    }
    Ok(CorsOrigins::List(origins))
}

/// Each adapter's and each use case's section of the settings: the one place where
/// environment variables become the adapters' own configuration types, so `startup.rs` only
/// wires what these return.
impl Settings {
    /// The SQL adapter's section.
    #[must_use]
    pub fn sql(&self) -> tenantry_adapter_sql::SqlConfig {
        let mut sql = tenantry_adapter_sql::SqlConfig::new(self.database_url.clone());
        sql.max_connections = self.database_max_connections;
        sql
    }

    /// The Redis adapter's section; `None` runs in one process without Redis.
    #[must_use]
    pub fn redis(&self) -> Option<tenantry_adapter_redis::RedisConfig> {
        self.redis_url.as_ref().map(|url| {
            let mut config = tenantry_adapter_redis::RedisConfig::new(url.clone());
            config.key_prefix.clone_from(&self.redis_key_prefix);
            config
        })
    }

    /// The object store's section, from `TENANTRY_STORAGE_URL`: `file://<folder>` (the
    /// embedded default), `s3://<bucket>[/<prefix>]` (with `TENANTRY_S3_ENDPOINT` for an
    /// S3-compatible server: path-style requests, and plain http allowed when the endpoint
    /// says http), or `memory://` (lost on exit).
    #[must_use]
    pub fn storage(&self) -> StorageSection {
        if let Some(rest) = self.storage_url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.trim_matches('/');
            return StorageSection::S3(tenantry_adapter_storage::S3Config {
                bucket: bucket.to_owned(),
                region: self.s3_region.clone(),
                endpoint: self.s3_endpoint.clone(),
                credentials: self.s3_credentials.clone(),
                // Self-hosted servers (MinIO, Ceph, moto) answer path-style requests only.
                path_style: self.s3_endpoint.is_some(),
                // The endpoint's own scheme decides; production refuses http:// off-host.
                allow_http: self.s3_endpoint.as_deref().is_some_and(|endpoint| endpoint.starts_with("http://")),
                prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
            });
        }
        if self.storage_url.starts_with("memory://") {
            return StorageSection::Memory;
        }
        let folder = self.storage_url.strip_prefix("file://").unwrap_or(&self.storage_url);
        StorageSection::Local(PathBuf::from(folder))
    }

    /// The webhook sender's section (its timeout and SSRF guard).
    #[must_use]
    pub fn webhook_sender(&self) -> tenantry_adapter_http::SenderSettings {
        tenantry_adapter_http::SenderSettings {
            timeout: self.webhook_timeout,
            ..tenantry_adapter_http::SenderSettings::new(self.webhook_allow_private)
        }
    }

    /// The password hasher's section.
    #[must_use]
    pub fn password_hashing(&self) -> tenantry_adapter_crypto::Argon2Settings {
        tenantry_adapter_crypto::Argon2Settings {
            max_concurrent: self.password_hash_concurrency,
            ..tenantry_adapter_crypto::Argon2Settings::default()
        }
    }

    /// The use cases' policies (identity, quotas, webhooks); `rate_lease` follows the rate
    /// store: leased when it is shared over the network (Redis).
    #[must_use]
    pub fn policies(&self) -> tenantry_application::Policies {
        tenantry_application::Policies {
            auth: tenantry_application::AuthSettings::new(
                self.public_url.clone(),
                self.login_max_failures,
                self.require_verified_email,
            ),
            quotas: tenantry_application::QuotaSettings {
                catalog: self.limits.catalog.clone(),
                meter_api_calls: self.limits.meter_api_calls,
                ..tenantry_application::QuotaSettings::default()
            },
            files: tenantry_application::FileSettings {
                max_upload_bytes: self.max_upload_bytes,
                allowed_types: self.upload_allowed_types.clone(),
                ..tenantry_application::FileSettings::default()
            },
            webhooks: tenantry_application::WebhookSettings {
                https_only: self.environment == Environment::Production,
                schedule: self.webhook_retry_schedule.clone(),
                // Past it another worker may take a delivery over: twice the attempt's limit,
                // so a live worker's attempt has always ended first.
                claim_lease: self.webhook_timeout * 2 + Duration::from_secs(1),
                disable_after: self.webhook_disable_after,
                ..tenantry_application::WebhookSettings::default()
            },
            rate_lease: if self.redis_url.is_some() {
                tenantry_application::LeasePolicy::REMOTE
            } else {
                tenantry_application::LeasePolicy::NONE
            },
            mail: tenantry_application::MailSettings {
                schedule: self.mail_retry_schedule.clone(),
                // Longer than a whole batch's sends can take (each SMTP exchange is bounded by
                // the adapter's timeout), so a live sender's claim never lapses mid-send.
                lease: Duration::from_secs(120),
                ..tenantry_application::MailSettings::default()
            },
            mail_templates: self.mail_templates.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load(&Sources::from_pairs(pairs.iter().copied()))
    }

    fn variables(problems: &[ConfigProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.variable.as_str()).collect()
    }

    #[test]
    fn the_embedded_default_needs_no_configuration() {
        let settings = load(&[]).expect("defaults are valid");
        assert_eq!(settings.environment, Environment::Development);
        assert_eq!(settings.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.database_url.expose_secret(), "sqlite://data/tenantry.db?mode=rwc");
        assert!(settings.redis_url.is_none());
        assert_eq!(settings.storage_url, "file://data/files");
        assert_eq!(settings.mail_dir, PathBuf::from("data/mail"));
        assert_eq!(settings.webhook_retry_schedule.len(), 7);
        assert_eq!(settings.max_upload_bytes, 104_857_600);
        assert_eq!(settings.login_max_failures, 5);
        assert_eq!(settings.cors_origins, CorsOrigins::None);
        assert_eq!(settings.json_limit_bytes, 1_048_576);
    }

    #[test]
    fn rust_log_is_the_fallback_of_tenantry_log() {
        assert_eq!(load(&[("RUST_LOG", "tenantry=debug,warn")]).expect("valid").log_filter, "tenantry=debug,warn");
        let both = load(&[("RUST_LOG", "debug"), ("TENANTRY_LOG", "warn")]).expect("valid");
        assert_eq!(both.log_filter, "warn", "TENANTRY_LOG wins");
        let err = load(&[("RUST_LOG", "tenantry=loud")]).expect_err("invalid");
        assert_eq!(variables(&err.invalid), ["RUST_LOG"], "the variable at fault is named");
    }

    #[test]
    fn mail_template_overrides_are_loaded_and_a_broken_one_names_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("invitation.subject.txt"), "You are wanted at {{ org_name }}").expect("write");
        std::fs::write(dir.path().join(".invitation.html.swp"), "editor leftovers are ignored").expect("write");
        let folder = dir.path().display().to_string();
        let settings = load(&[("TENANTRY_MAIL_TEMPLATES_DIR", &folder)]).expect("valid overrides");
        let context = serde_json::json!({"org_name": "Acme", "role": "member", "link": "l", "validity": "v"});
        let mail =
            settings.mail_templates.render(tenantry_application::MailKind::Invitation, &context).expect("renders");
        assert_eq!(mail.subject, "You are wanted at Acme");

        std::fs::write(dir.path().join("password_reset.html"), "<a href=\"{{ link \">").expect("write");
        let err = load(&[("TENANTRY_MAIL_TEMPLATES_DIR", &folder)]).expect_err("a template that does not parse");
        assert_eq!(variables(&err.invalid), ["TENANTRY_MAIL_TEMPLATES_DIR"]);
        assert!(err.to_string().contains("password_reset.html: "), "the file is named: {err}");

        let missing =
            load(&[("TENANTRY_MAIL_TEMPLATES_DIR", "/nonexistent/tenantry-templates")]).expect_err("no folder");
        assert_eq!(variables(&missing.invalid), ["TENANTRY_MAIL_TEMPLATES_DIR"]);
        let schedule = load(&[("TENANTRY_MAIL_RETRY_SCHEDULE", "10s,later")]).expect_err("a bad schedule");
        assert_eq!(variables(&schedule.invalid), ["TENANTRY_MAIL_RETRY_SCHEDULE"]);
    }

    #[test]
    fn every_bad_value_is_reported_at_once_by_name() {
        let err = load(&[
            ("TENANTRY_BIND", "nowhere"),
            ("TENANTRY_DATABASE_URL", "mysql://x"),
            ("TENANTRY_MAX_UPLOAD_BYTES", "lots"),
            ("TENANTRY_REQUIRE_VERIFIED_EMAIL", "perhaps"),
            ("TENANTRY_WEBHOOK_RETRY_SCHEDULE", "5s,soon"),
            ("TENANTRY_CORS_ORIGINS", "https://ok.example, https://bad.example/path"),
            ("TENANTRY_ENV", "staging"),
        ])
        .expect_err("invalid");
        assert_eq!(
            variables(&err.invalid),
            vec![
                "TENANTRY_ENV",
                "TENANTRY_BIND",
                "TENANTRY_DATABASE_URL",
                "TENANTRY_WEBHOOK_RETRY_SCHEDULE",
                "TENANTRY_MAX_UPLOAD_BYTES",
                "TENANTRY_REQUIRE_VERIFIED_EMAIL",
                "TENANTRY_CORS_ORIGINS",
            ]
        );
        let text = err.to_string();
        assert!(text.contains("TENANTRY_BIND: `nowhere` is not an address:port"), "{text}");
    }

    #[test]
    fn production_lists_every_insecure_setting() {
        let err = load(&[
            ("TENANTRY_ENV", "production"),
            ("TENANTRY_CORS_ORIGINS", "*"),
            ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"),
        ])
        .expect_err("the embedded default is not production-ready");
        assert!(err.invalid.is_empty());
        assert_eq!(
            variables(&err.insecure),
            vec![
                "TENANTRY_DATABASE_URL",
                "TENANTRY_REDIS_URL",
                "TENANTRY_JWT_PRIVATE_KEY",
                "TENANTRY_ENCRYPTION_KEY",
                "TENANTRY_SMTP_URL",
                "TENANTRY_STORAGE_URL",
                "TENANTRY_PUBLIC_URL",
                "TENANTRY_CORS_ORIGINS",
                "TENANTRY_WEBHOOK_ALLOW_PRIVATE",
            ]
        );
    }

    #[test]
    fn a_complete_production_configuration_starts() {
        let settings = load(&[
            ("TENANTRY_ENV", "production"),
            ("TENANTRY_DATABASE_URL", "postgres://tenantry:pw@db:5432/tenantry"),
            ("TENANTRY_REDIS_URL", "redis://cache:6379"),
            ("TENANTRY_JWT_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----"),
            ("TENANTRY_ENCRYPTION_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ("TENANTRY_SMTP_URL", "smtps://user:pw@mail.example.com:465"),
            ("TENANTRY_STORAGE_URL", "s3://tenantry-files"),
            ("TENANTRY_PUBLIC_URL", "https://api.example.com/"),
            ("TENANTRY_CORS_ORIGINS", "https://app.example.com"),
        ])
        .expect("secure settings are accepted");
        assert_eq!(settings.bind.to_string(), "0.0.0.0:8080", "production binds every interface by default");
        assert_eq!(settings.public_url, "https://api.example.com");
    }

    #[test]
    fn the_storage_section_follows_the_url() {
        let settings = load(&[]).expect("defaults");
        assert!(matches!(settings.storage(), StorageSection::Local(folder) if folder == Path::new("data/files")));
        let settings = load(&[("TENANTRY_STORAGE_URL", "memory://")]).expect("memory");
        assert!(matches!(settings.storage(), StorageSection::Memory));
        let settings = load(&[
            ("TENANTRY_STORAGE_URL", "s3://files/tenantry/prod/"),
            ("TENANTRY_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_DEFAULT_REGION", "eu-west-3"),
        ])
        .expect("s3");
        let StorageSection::S3(s3) = settings.storage() else { panic!("an S3 section") };
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_deref(), s3.region.as_str()),
            ("files", Some("tenantry/prod"), "eu-west-3")
        );
        assert!(s3.path_style && s3.allow_http, "a self-hosted http endpoint: path-style, plain http");
        assert_eq!(s3.credentials.map(|c| c.access_key_id), Some("id".to_owned()));
        let aws = load(&[("TENANTRY_STORAGE_URL", "s3://files")]).expect("AWS itself");
        let StorageSection::S3(s3) = aws.storage() else { panic!("an S3 section") };
        assert!(!s3.path_style && !s3.allow_http && s3.credentials.is_none() && s3.region == "us-east-1");
        let err = load(&[
            ("TENANTRY_STORAGE_URL", "s3://"),
            ("AWS_ACCESS_KEY_ID", "id"),
            ("TENANTRY_UPLOAD_ALLOWED_TYPES", "images"),
        ])
        .expect_err("no bucket, half a key pair, a bad type");
        let mut named = variables(&err.invalid);
        named.sort_unstable();
        assert_eq!(named, ["AWS_SECRET_ACCESS_KEY", "TENANTRY_STORAGE_URL", "TENANTRY_UPLOAD_ALLOWED_TYPES"], "{err}");
    }

    #[test]
    fn production_refuses_an_http_s3_endpoint_on_another_host() {
        let production = |endpoint: &str| {
            load(&[
                ("TENANTRY_ENV", "production"),
                ("TENANTRY_DATABASE_URL", "postgres://tenantry:pw@db:5432/tenantry"),
                ("TENANTRY_REDIS_URL", "redis://cache:6379"),
                ("TENANTRY_JWT_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----"),
                ("TENANTRY_ENCRYPTION_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                ("TENANTRY_SMTP_URL", "smtps://user:pw@mail.example.com:465"),
                ("TENANTRY_STORAGE_URL", "s3://tenantry-files"),
                ("TENANTRY_S3_ENDPOINT", endpoint),
                ("TENANTRY_PUBLIC_URL", "https://api.example.com/"),
            ])
        };
        let refused = production("http://minio.internal:9000").expect_err("plain http off-host");
        assert_eq!(variables(&refused.insecure), vec!["TENANTRY_S3_ENDPOINT"]);
        production("https://minio.internal:9000").expect("https");
        production("http://127.0.0.1:9000").expect("loopback");
    }

    #[test]
    fn production_refuses_plain_smtp_to_a_remote_relay_only() {
        let production = |smtp: &str| {
            load(&[
                ("TENANTRY_ENV", "production"),
                ("TENANTRY_DATABASE_URL", "postgres://tenantry:pw@db:5432/tenantry"),
                ("TENANTRY_REDIS_URL", "redis://cache:6379"),
                ("TENANTRY_JWT_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----"),
                ("TENANTRY_ENCRYPTION_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                ("TENANTRY_SMTP_URL", smtp),
                ("TENANTRY_STORAGE_URL", "s3://tenantry-files"),
                ("TENANTRY_PUBLIC_URL", "https://api.example.com/"),
            ])
        };
        let refused = production("smtp://user:pw@mail.example.com:25").expect_err("plain SMTP to a remote relay");
        assert_eq!(variables(&refused.insecure), vec!["TENANTRY_SMTP_URL"]);
        assert!(!refused.to_string().contains("pw@"), "the URL's password is never printed: {refused}");
        for accepted in [
            "smtps://user:pw@mail.example.com:465",
            "smtp://user:pw@mail.example.com:587?tls=required",
            "smtp://user:pw@mail.example.com:587?tls=starttls",
            "smtp://127.0.0.1:1025",
            "smtp://localhost:25",
        ] {
            assert!(production(accepted).is_ok(), "{accepted}");
        }
        let unknown = production("smtp://user:pw@mail.example.com:587?tls=sometimes").expect_err("an unknown tls mode");
        assert_eq!(variables(&unknown.invalid), vec!["TENANTRY_SMTP_URL"]);
        assert!(!unknown.to_string().contains("pw@"), "the URL's password is never printed: {unknown}");
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let settings = load(&[
            ("TENANTRY_DATABASE_URL", "postgres://u:db-secret@h/db"),
            ("TENANTRY_REDIS_URL", "redis://:redis-secret@h"),
            ("TENANTRY_JWT_PRIVATE_KEY", "key-secret"),
            ("TENANTRY_ENCRYPTION_KEY", "enc-secret"),
        ])
        .expect("valid");
        let printed = format!("{settings:?}");
        for secret in ["db-secret", "redis-secret", "key-secret", "enc-secret"] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
    }

    #[test]
    fn the_config_file_is_read_and_the_environment_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("tenantry.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:9000\"\nlogin_max_failures = 7\ncors_origins = [\"https://a.example\", \"https://b.example\"]\n",
        )
        .expect("write");
        let mut sources = Sources::default();
        sources.merge_file(&file);
        sources.insert("TENANTRY_BIND".into(), "127.0.0.1:9001".into());
        let settings = Settings::load(&sources).expect("valid");
        assert_eq!(settings.bind.to_string(), "127.0.0.1:9001");
        assert_eq!(settings.login_max_failures, 7);
        assert_eq!(
            settings.cors_origins,
            CorsOrigins::List(vec!["https://a.example".into(), "https://b.example".into()])
        );
    }

    #[test]
    fn unknown_file_keys_and_unreadable_files_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("tenantry.toml");
        std::fs::write(&file, "bnid = \"x\"\n").expect("write");
        let mut sources = Sources::default();
        sources.merge_file(&file);
        sources.merge_file(&dir.path().join("missing.toml"));
        let err = Settings::load(&sources).expect_err("invalid");
        assert_eq!(err.invalid.len(), 2);
        assert!(err.invalid[0].message.contains("unknown key `bnid`"));
    }

    #[test]
    fn protocols_are_the_two_built_in_and_anything_else_is_named() {
        assert_eq!(OtlpProtocol::parse("grpc"), Ok(OtlpProtocol::Grpc));
        assert_eq!(OtlpProtocol::parse(" http/protobuf "), Ok(OtlpProtocol::HttpProtobuf));
        assert!(OtlpProtocol::parse("http/json").expect_err("not built in").contains("not supported"));
        assert!(OtlpProtocol::parse("udp").expect_err("not a protocol").contains("`udp`"));
        assert_eq!(OtlpProtocol::default(), OtlpProtocol::HttpProtobuf);
    }

    #[test]
    fn the_traces_url_follows_the_exporter_specification() {
        let name = || "tenantry".to_owned();
        let http = OtlpExport::resolve(Some("http://c:4318/"), None, OtlpProtocol::HttpProtobuf, name());
        assert_eq!(http.map(|e| e.endpoint).as_deref(), Some("http://c:4318/v1/traces"));
        let grpc = OtlpExport::resolve(Some("http://c:4317"), None, OtlpProtocol::Grpc, name());
        assert_eq!(grpc.map(|e| e.endpoint).as_deref(), Some("http://c:4317"));
        let specific =
            OtlpExport::resolve(Some("http://c:4318"), Some("http://t:1/x"), OtlpProtocol::HttpProtobuf, name());
        assert_eq!(specific.map(|e| e.endpoint).as_deref(), Some("http://t:1/x"));
        assert_eq!(OtlpExport::resolve(None, None, OtlpProtocol::Grpc, name()), None);
    }

    #[test]
    fn otlp_export_follows_the_standard_variables_and_names_a_bad_protocol() {
        let off = load(&[]).expect("valid");
        assert_eq!(off.otlp_export(), None, "no endpoint, no export");
        let http = load(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]).expect("valid");
        let export = http.otlp_export().expect("exporting");
        assert_eq!(export.protocol, OtlpProtocol::HttpProtobuf, "the specification's default");
        assert_eq!(export.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(export.service_name, "tenantry");
        let grpc = load(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "api-eu"),
        ])
        .expect("valid");
        let export = grpc.otlp_export().expect("exporting");
        assert_eq!((export.protocol, export.endpoint.as_str()), (OtlpProtocol::Grpc, "http://127.0.0.1:4317"));
        assert_eq!(export.service_name, "api-eu");
        let err = load(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"),
        ])
        .expect_err("invalid");
        assert_eq!(variables(&err.invalid), vec!["OTEL_EXPORTER_OTLP_PROTOCOL"]);
        assert!(err.invalid[0].message.contains("grpc") && err.invalid[0].message.contains("http/protobuf"));
        let err = load(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318")]).expect_err("invalid");
        assert_eq!(variables(&err.invalid), vec!["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]);
    }

    #[test]
    fn the_default_public_url_follows_the_bind_address() {
        let v4 = load(&[("TENANTRY_BIND", "0.0.0.0:9000")]).expect("valid");
        assert_eq!(v4.public_url, "http://127.0.0.1:9000");
        let v6 = load(&[("TENANTRY_BIND", "[::]:9000")]).expect("valid");
        assert_eq!(v6.public_url, "http://[::1]:9000");
        let explicit =
            load(&[("TENANTRY_BIND", "0.0.0.0:9000"), ("TENANTRY_PUBLIC_URL", "https://x.example/")]).expect("valid");
        assert_eq!(explicit.public_url, "https://x.example");
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        let err = load(&[("TENANTRY_S3_ENDPOINT", "minio:9000"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector")])
            .expect_err("invalid");
        assert_eq!(variables(&err.invalid), vec!["TENANTRY_S3_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]);
    }

    #[test]
    fn misspelt_variables_are_noticed() {
        let sources = Sources::from_pairs([("TENANTRY_DATABSE_URL", "x"), ("TENANTRY_TEST_REDIS_URL", "y")]);
        assert_eq!(sources.unknown, vec!["TENANTRY_DATABSE_URL".to_owned()]);
    }

    #[test]
    fn retry_schedules_parse_units() {
        assert_eq!(
            parse_schedule("5s,5m,2h,1d").expect("valid"),
            vec![
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(7200),
                Duration::from_secs(86_400)
            ]
        );
        assert!(parse_schedule("0s").is_err());
        assert!(parse_schedule("5x").is_err());
        assert!(parse_schedule("").is_err());
    }
}
