//! containerd's `config.toml` (version 2), rendered from the options a playbook gives.
//!
//! The template (`templates/containerd-config.toml.j2`) is compiled into krun so every node gets
//! the same file for the same options. Values are written as TOML literals by the `toml` filter,
//! so a registry name or a password cannot break out of its string. The rendered file is
//! validated on the node by containerd itself before it is installed (`containerd_install`).

use std::collections::BTreeMap;

use serde::Serialize;

const TEMPLATE: &str = include_str!("../../templates/containerd-config.toml.j2");

const UNIT_TEMPLATE: &str = include_str!("../../templates/containerd.service.j2");

pub const CONFIG_PATH: &str = "/etc/containerd/config.toml";
pub const UNIT_PATH: &str = "/etc/systemd/system/containerd.service";

/// Credentials for one registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Auth {
    pub username: String,
    pub password: String,
}

/// What `config.toml` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Persistent data (images, snapshots): containerd's `root`.
    pub root: String,
    /// Runtime state: containerd's `state`.
    pub state: String,
    /// The CRI socket.
    pub address: String,
    /// The pause image (`sandbox_image`); containerd's default when `None`.
    pub sandbox_image: Option<String>,
    /// runc's `SystemdCgroup`: kubelet's `cgroupDriver: systemd` needs it.
    pub systemd_cgroup: bool,
    /// Registry host → mirror endpoints.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Registry host → credentials.
    pub auths: BTreeMap<String, Auth>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            root: "/var/lib/containerd".into(),
            state: "/run/containerd".into(),
            address: "/run/containerd/containerd.sock".into(),
            sandbox_image: None,
            systemd_cgroup: true,
            mirrors: BTreeMap::new(),
            auths: BTreeMap::new(),
        }
    }
}

/// The systemd unit for a containerd release tarball extracted under `prefix` (`/usr/local`).
pub fn tarball_unit(prefix: &str) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.render_str(
        UNIT_TEMPLATE,
        minijinja::context! { prefix => prefix.trim_end_matches('/') },
    )
    .map_err(|e| format!("containerd unit template: {e}"))
}

impl Config {
    /// The `config.toml` text.
    pub fn render(&self) -> Result<String, String> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.add_filter("toml", toml_literal);
        env.add_template("containerd-config.toml", TEMPLATE)
            .map_err(|e| format!("containerd config template: {e}"))?;
        let mut text = env
            .get_template("containerd-config.toml")
            .and_then(|t| t.render(minijinja::Value::from_serialize(self)))
            .map_err(|e| format!("containerd config template: {e}"))?;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }
}

/// A value as a TOML literal: strings quoted and escaped, booleans and numbers as they are.
fn toml_literal(value: minijinja::Value) -> Result<String, minijinja::Error> {
    if let Some(text) = value.as_str() {
        return Ok(toml_string(text));
    }
    match value.kind() {
        minijinja::value::ValueKind::Bool => Ok(value.is_true().to_string()),
        minijinja::value::ValueKind::Number => Ok(value.to_string()),
        kind => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("cannot write a {kind} as a TOML literal"),
        )),
    }
}

/// A TOML basic string.
pub fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The command that answers once containerd serves CRI at `address` (a socket path): crictl
/// where the node has it (it comes with the Kubernetes packages' cri-tools), else containerd's
/// own `ctr`, which must list the CRI plugin as loaded.
pub fn cri_check_command(address: &str) -> String {
    let socket = crate::quote::quote(&format!("unix://{address}"));
    let address = crate::quote::quote(address);
    format!(
        "if command -v crictl >/dev/null 2>&1; then crictl --runtime-endpoint {socket} version; \
         else ctr --address {address} plugins ls | grep -Eq '^io\\.containerd\\.grpc\\.v1[[:space:]]+cri[[:space:]].*[[:space:]]ok[[:space:]]*$' \
         && ctr --address {address} version; fi"
    )
}

/// The runtime version from [`cri_check_command`]'s output: crictl's `RuntimeVersion:`, or the
/// server's `Version:` in ctr's.
pub fn parse_runtime_version(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("RuntimeVersion:"))
        .or_else(|| {
            output
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("Version:"))
        })
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cri_check_falls_back_to_ctr_without_crictl() {
        let check = cri_check_command("/run/containerd/containerd.sock");
        assert!(check.starts_with("if command -v crictl"), "{check}");
        assert!(
            check.contains(
                "crictl --runtime-endpoint unix:///run/containerd/containerd.sock version"
            ),
            "{check}"
        );
        assert!(
            check.contains("ctr --address /run/containerd/containerd.sock plugins ls"),
            "{check}"
        );
        assert_eq!(
            parse_runtime_version(
                "Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  1.6.20\n"
            ),
            "1.6.20"
        );
        let ctr = "Client:\n  Version:  1.6.20~ds1\n  Go version: go1.19.8\n\nServer:\n  Version:  1.6.21~ds1\n  UUID: x\n";
        assert_eq!(parse_runtime_version(ctr), "1.6.21~ds1");
    }
    use proptest::prelude::*;

    fn cri(doc: &toml::Table) -> &toml::Table {
        doc["plugins"]["io.containerd.grpc.v1.cri"]
            .as_table()
            .unwrap()
    }

    #[test]
    fn defaults_use_the_systemd_cgroup_driver() {
        let text = Config::default().render().unwrap();
        let doc: toml::Table = text.parse().unwrap();
        assert_eq!(doc["version"].as_integer(), Some(2));
        assert_eq!(doc["root"].as_str(), Some("/var/lib/containerd"));
        let runc = &cri(&doc)["containerd"]["runtimes"]["runc"];
        assert_eq!(runc["runtime_type"].as_str(), Some("io.containerd.runc.v2"));
        assert_eq!(runc["options"]["SystemdCgroup"].as_bool(), Some(true));
        assert!(!cri(&doc).contains_key("sandbox_image"));
    }

    #[test]
    fn every_option_lands_where_containerd_reads_it() {
        let config = Config {
            root: "/data/containerd".into(),
            state: "/run/ctr".into(),
            sandbox_image: Some("registry.k8s.io/pause:3.9".into()),
            systemd_cgroup: false,
            mirrors: BTreeMap::from([(
                "docker.io".to_owned(),
                vec!["https://m1.example.com".to_owned(), "https://m2".to_owned()],
            )]),
            auths: BTreeMap::from([(
                "my-register2.example.com".to_owned(),
                Auth {
                    username: "robot".into(),
                    password: "p\"a\\ss\u{7f}".into(),
                },
            )]),
            ..Config::default()
        };
        let text = config.render().unwrap();
        let doc: toml::Table = text.parse().unwrap();
        assert_eq!(doc["state"].as_str(), Some("/run/ctr"));
        let cri = cri(&doc);
        assert_eq!(
            cri["sandbox_image"].as_str(),
            Some("registry.k8s.io/pause:3.9")
        );
        assert_eq!(
            cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"].as_bool(),
            Some(false)
        );
        let endpoints = cri["registry"]["mirrors"]["docker.io"]["endpoint"]
            .as_array()
            .unwrap();
        assert_eq!(endpoints.len(), 2);
        let auth = &cri["registry"]["configs"]["my-register2.example.com"]["auth"];
        assert_eq!(auth["username"].as_str(), Some("robot"));
        assert_eq!(auth["password"].as_str(), Some("p\"a\\ss\u{7f}"));
    }

    #[test]
    fn the_tarball_unit_starts_the_extracted_binary() {
        let unit = tarball_unit("/usr/local/").unwrap();
        assert!(
            unit.contains("\nExecStart=/usr/local/bin/containerd\n"),
            "{unit}"
        );
        assert!(unit.contains("Delegate=yes"));
    }

    proptest! {
        #[test]
        fn any_string_survives_as_a_toml_string(text in "\\PC*|[\\x00-\\x7f]{0,20}") {
            let doc: toml::Table = format!("k = {}", toml_string(&text)).parse().unwrap();
            prop_assert_eq!(doc["k"].as_str(), Some(text.as_str()));
        }
    }
}
