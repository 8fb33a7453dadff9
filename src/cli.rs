//! The command line as the user types it. Validation into a run configuration happens in
//! `settings`, so that bad input dies at the edge with a clear message and exit code 2.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Examples:
  krun playbooks/worker.rhai --node n1 --set version=1.21.14 --dry-run
  krun playbooks/worker.rhai --node n1 --node n2 --batch 2 --inventory inventory.toml
  krun check playbooks/*.rhai
  krun doc --format markdown

Exit codes: 0 success, 1 a step failed, 2 invalid input, 3 refused by a safety guard.";

/// Run Rhai upgrade playbooks against self-managed Kubernetes nodes, with an exact dry-run.
#[derive(Debug, Parser)]
#[command(
    name = "krun",
    version,
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub verbosity: Verbosity,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile playbooks with strict variables, resolve every import, report unknown functions; runs nothing.
    Check(CheckArgs),
    /// List every primitive and stdlib function with its signature and documentation.
    Doc(DocArgs),
    /// What a playbook is: its description, the parameters it declares, whether it runs per
    /// node and whether it drains (then every run is judged first).
    Describe(DescribeArgs),
    /// Continue a run that stopped (failure, Ctrl-C, crash) where it stopped.
    Resume(ResumeArgs),
    /// List recorded runs, or show one: its state per node and where it stopped.
    Runs(RunsArgs),
    /// Show or clear the cluster lock (a stale one, after its holder died).
    Unlock(UnlockArgs),
    /// A simulated Kubernetes cluster that real kubectl accepts.
    #[command(subcommand)]
    Sim(crate::sim::SimCommand),
    /// Check the cluster before an upgrade: findings with fixes, and the disruption forecast of
    /// a batch plan. Exit 3 when anything blocks.
    Preflight(Box<PreflightArgs>),
    /// The playbook libraries of this repository (krun.toml, krun.lock, vendor/).
    Lib(crate::cmd::lib::LibArgs),
    /// Start a team's playbook repository: krun.toml, a playbook, an inventory example, a CI check.
    Init(crate::cmd::init::InitArgs),
    /// Print the completion script for a shell.
    Completions(crate::cmd::completions::CompletionsArgs),
    /// Print krun's manual page (roff), or write one page per subcommand into a directory.
    Man(crate::cmd::completions::ManArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  krun preflight --target 1.29.4
  krun preflight --target 1.29.4 --inventory inventory.toml --snapshot /backups/etcd --cert-days 60
  krun preflight --inventory inventory.toml --take-snapshot etcd-before-upgrade.db
  krun preflight --inventory inventory.toml --lb lb1 --lb lb2
  krun preflight --rehearse cluster.yaml --target 1.29.4 --node worker-001 --node worker-002 --batch 2
  krun preflight --rehearse cluster.yaml --batch auto --output json

Preflight also checks etcd: every member healthy, a quorum margin of at least one for the
rolling restart, no learner pending, a recent snapshot (--snapshot, or --take-snapshot). etcd is
reached as a run reaches it: the --inventory's [etcd] section, else the client URLs the
cluster's etcd pods announce. And certificate expiry, read over ssh on the --inventory's nodes:
/etc/kubernetes/pki and the kubeconfigs' client certificates on those with the role
control-plane, the kubelet's certificates on the --node's (every node when none). And the
apiserver load balancer's backend list, read over ssh on the --lb nodes (or the inventory's
[apiserver_lb]): a control-plane node missing from it, or disabled, is a block. What cannot be
reached is reported as not checked, with the reason.

A block finding exits 3. Accept one explicitly with --accept ID (the whole id, or its check
name for all of its findings; `forecast` accepts the forecast's blocks); every acceptance is logged.")]
pub struct PreflightArgs {
    /// The Kubernetes version the upgrade goes to (skew, removed APIs, bound tokens).
    #[arg(long, value_name = "VERSION")]
    pub target: Option<String>,

    /// Judge a snapshot (`kubectl get … -o yaml`) in an in-process simulator instead of the
    /// live cluster.
    #[arg(long, value_name = "FILE")]
    pub rehearse: Option<PathBuf>,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// A workload the team calls critical (besides ingress controllers, Prometheus,
    /// Alertmanager and CoreDNS), `namespace/name` (repeatable).
    #[arg(long = "critical", value_name = "NS/NAME")]
    pub critical: Vec<String>,

    /// Manifest files or directories to check for API versions removed by the target.
    #[arg(long = "manifests", value_name = "PATH")]
    pub manifests: Vec<PathBuf>,

    /// A node to be upgraded (repeatable); with --batch, the nodes the forecast plays.
    #[arg(long = "node", value_name = "NAME")]
    pub nodes: Vec<String>,

    /// One kube-apiserver's own address, e.g. https://10.0.0.1:6443 (repeatable): each must
    /// answer /readyz by itself. Default: the kubeadm annotation on the apiserver pods.
    #[arg(long = "apiserver", value_name = "URL")]
    pub apiservers: Vec<String>,

    /// Inventory file (TOML), as for a run: its `[etcd]` section is how etcd is reached (else
    /// the endpoints the cluster's etcd pods announce), and certificates are read over ssh on its
    /// nodes with the role `control-plane` and on the --node's (all its nodes when none).
    #[arg(long, value_name = "FILE", env = "KRUN_INVENTORY")]
    pub inventory: Option<PathBuf>,

    /// Do not check etcd (health, quorum margin, learners, snapshots).
    #[arg(long)]
    pub skip_etcd: bool,

    /// An etcd snapshot file, or a directory of them, whose newest must be younger than
    /// --snapshot-max-age; without it (or --take-snapshot) a reachable etcd gets a warning that
    /// no recent snapshot is known.
    #[arg(long, value_name = "PATH")]
    pub snapshot: Option<PathBuf>,

    /// How old the newest snapshot may be (e.g. 6h, 2days).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub snapshot_max_age: String,

    /// Save an etcd snapshot to PATH on this machine now, as `etcd_snapshot` does (checksum
    /// verified, written atomically); a failure is a block.
    #[arg(long, value_name = "PATH")]
    pub take_snapshot: Option<PathBuf>,

    /// Do not check certificate expiry.
    #[arg(long)]
    pub skip_certs: bool,

    /// Warn about certificates that expire within this many days (expired ones block).
    #[arg(long, value_name = "DAYS", default_value_t = crate::preflight::certs::DEFAULT_CERT_DAYS)]
    pub cert_days: u32,

    /// An inventory node running the haproxy and/or keepalived in front of the apiservers
    /// (repeatable; default: `nodes` of the inventory's [apiserver_lb] section). Its
    /// configuration is read over ssh: every control-plane node must be an enabled backend of
    /// each apiserver backend list (a missing or disabled one blocks), a backend that is no
    /// control-plane node and two load balancers with different lists warn.
    #[arg(long = "lb", value_name = "NODE")]
    pub lb: Vec<String>,

    /// The load balancer's configuration file to read, instead of /etc/haproxy/haproxy.cfg and
    /// /etc/keepalived/keepalived.conf (repeatable; default: `config` of [apiserver_lb]).
    #[arg(long = "lb-config", value_name = "PATH")]
    pub lb_config: Vec<String>,

    /// Trust and record host keys of nodes not yet in known_hosts (like OpenSSH's accept-new).
    #[arg(long)]
    pub accept_new_host_keys: bool,

    /// Seconds to wait for an ssh connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub connect_timeout: u64,

    /// Forecast this batch plan: N, N% or auto (all non-control-plane nodes when no --node).
    #[arg(long, value_name = "N|N%|auto")]
    pub batch: Option<String>,

    /// Cluster seconds each node is down for its upgrade after its drain.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub upgrade_time: f64,

    /// Cluster seconds from scheduling to Ready of a replacement pod.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub startup_delay: f64,

    /// The drain evicts pods without a controller (drain's `force`).
    #[arg(long)]
    pub force: bool,

    /// Forecast drains that evict a workload without a budget all at once (`drain`'s
    /// `keep_replica: false`); by default a drain keeps a ready replica of it.
    #[arg(long)]
    pub no_keep_replica: bool,

    /// Accept a block finding (its id or check name; `forecast` for the forecast). Logged.
    #[arg(long = "accept", value_name = "ID")]
    pub accept: Vec<String>,

    /// Also write the report as a self-contained HTML page: findings, the plan as a timeline,
    /// each workload's ready replicas batch by batch.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,

    /// Output format on stdout: text for people, json or yaml for programs (with a `schema`).
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The playbook to run (a .rhai file).
    #[arg(value_name = "PLAYBOOK", required = true)]
    pub playbook: Option<PathBuf>,

    /// Run the playbook once per named node, with `node` bound to it (repeatable).
    #[arg(long = "node", value_name = "NAME")]
    pub nodes: Vec<String>,

    /// A parameter read by `param("KEY")`; true/false become booleans, plain integers integers.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// A secret parameter (a join token, a password): read with `param`, always a string, and
    /// shown as *** in logs, plans, reports and the journal.
    #[arg(long = "set-secret", value_name = "KEY=VALUE")]
    pub set_secret: Vec<String>,

    /// Inventory file (TOML) describing nodes and how to reach them.
    #[arg(long, value_name = "FILE", env = "KRUN_INVENTORY")]
    pub inventory: Option<PathBuf>,

    /// A directory of library modules for `import` (repeatable; searched after the stdlib).
    #[arg(long = "lib", value_name = "DIR")]
    pub libs: Vec<PathBuf>,

    /// A file or directory outside the playbook's directory and the --lib directories that
    /// `render`, `upload` and `import` may read (repeatable). Without it they refuse absolute
    /// paths and `..` that leads out.
    #[arg(long = "allow-local", value_name = "PATH")]
    pub allow_local: Vec<PathBuf>,

    /// How many nodes run at once: a number (3), a share of the nodes (10%), or `auto` (batches
    /// chosen from the cluster so that no workload goes below its PodDisruptionBudget; needs
    /// the cluster, run in batches one after another). With --rehearse, the disruption
    /// forecast of the plan is printed first.
    #[arg(long, value_name = "N|N%|auto", default_value = "1")]
    pub batch: String,

    /// Accept a block of the disruption forecast (`forecast`) and run anyway. Logged.
    #[arg(long = "accept", value_name = "ID")]
    pub accept: Vec<String>,

    /// Evaluate the whole playbook, record every change instead of making it, and print the plan.
    #[arg(long)]
    pub dry_run: bool,

    /// Rehearse against a simulated copy of a cluster (a `kubectl get … -o yaml` snapshot, as
    /// `krun sim serve` takes): Kubernetes operations really happen in the simulation, node
    /// commands are recorded as in --dry-run. Implies --dry-run.
    #[arg(long, value_name = "FILE")]
    pub rehearse: Option<PathBuf>,

    /// With --dry-run: do not contact nodes at all, even for read-only probes, nor a library's
    /// git remote (libraries come from vendor/ and the cache).
    #[arg(long)]
    pub offline: bool,

    /// Fail when krun.lock does not match krun.toml (or a path library changed) instead of
    /// updating it.
    #[arg(long)]
    pub locked: bool,

    /// Refuse (exit 3) a `kubeadm_upgrade_apply` or kubelet install after which a kubelet would
    /// be outside the Kubernetes version-skew policy, instead of warning.
    #[arg(long)]
    pub strict_skew: bool,

    /// Output format on stdout: text for people, json or yaml for programs (with a `schema`).
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Trust and record host keys of hosts not yet in known_hosts (like OpenSSH's accept-new).
    /// A changed host key is always refused.
    #[arg(long)]
    pub accept_new_host_keys: bool,

    /// Do not ask before a run that cordons, drains, formats a disk, removes etcd members or
    /// restores a snapshot. On a terminal krun shows the plan of such a run and asks first;
    /// without a terminal it never asks.
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Seconds to wait for an ssh connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub connect_timeout: u64,

    /// Default time limit for one command on a node (e.g. 30s, 10m, 1h); `sh` may override it.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub command_timeout: String,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Where run journals are kept (`<DIR>/runs/<id>/journal.jsonl`).
    #[arg(
        long,
        value_name = "DIR",
        env = "KRUN_STATE_DIR",
        default_value = ".krun"
    )]
    pub state_dir: PathBuf,

    /// The Lease a run that changes the cluster holds, so no second upgrade runs at the same time.
    #[arg(
        long,
        value_name = "NAMESPACE/NAME",
        env = "KRUN_LOCK",
        default_value = crate::kube::lock::DEFAULT_LOCK
    )]
    pub lock: String,

    /// Run without the cluster lock (when the API server itself is what needs fixing). Logged.
    #[arg(long)]
    pub no_lock: bool,

    /// Time limit for the whole run (e.g. 2h); unlimited when absent.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

/// How to reach the cluster, as kubectl users expect.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// The kubeconfig file to use (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use instead of its current-context.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl ClusterArgs {
    pub fn options(&self) -> crate::kube::ClientOptions {
        crate::kube::ClientOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct Verbosity {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Less output: errors, and of a plan or a run only its summary.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Yaml,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Without --force, only a lock whose holder stopped renewing it (expired) is \
cleared; a live holder's lock is shown and left alone (exit 3). With --force the lock is broken \
whoever holds it, and the Lease records who broke it."
)]
pub struct UnlockArgs {
    /// Break the lock even though its holder is still renewing it.
    #[arg(long)]
    pub force: bool,

    /// The Lease to clear.
    #[arg(
        long,
        value_name = "NAMESPACE/NAME",
        env = "KRUN_LOCK",
        default_value = crate::kube::lock::DEFAULT_LOCK
    )]
    pub lock: String,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Playbooks to check.
    #[arg(value_name = "PLAYBOOK", required = true)]
    pub playbooks: Vec<PathBuf>,

    /// Library directories for `import` (repeatable).
    #[arg(long = "lib", value_name = "DIR")]
    pub libs: Vec<PathBuf>,

    /// A file or directory outside the playbooks' directories and the --lib directories that
    /// `import` may read (repeatable).
    #[arg(long = "allow-local", value_name = "PATH")]
    pub allow_local: Vec<PathBuf>,

    /// Fail when krun.lock does not match krun.toml instead of updating it.
    #[arg(long)]
    pub locked: bool,

    /// Never contact a library's git remote (vendor/ and the cache only).
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  krun describe playbooks/worker.rhai
  krun describe playbooks/cluster.rhai --output json")]
pub struct DescribeArgs {
    /// The playbook.
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: PathBuf,

    /// Library directories for `import` (repeatable).
    #[arg(long = "lib", value_name = "DIR")]
    pub libs: Vec<PathBuf>,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DocArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = DocFormat::Markdown)]
    pub format: DocFormat,

    /// Document the modules of this library of the repository in the current directory
    /// (a name from its krun.lock) instead of krun's primitives and stdlib.
    #[arg(long = "lib", value_name = "NAME")]
    pub lib: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DocFormat {
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run to resume (see `krun runs`).
    #[arg(value_name = "RUN_ID")]
    pub id: String,

    /// Run again a change whose outcome the journal does not know (interrupted mid-way).
    #[arg(long)]
    pub retry_unknown: bool,

    /// Resume even though the playbook changed since the run started.
    #[arg(long)]
    pub allow_changed: bool,

    /// Refuse version-skew violations (as `--strict-skew` on a run), even if the run did not.
    #[arg(long)]
    pub strict_skew: bool,

    /// Do not ask before going on (as `--yes` on a run).
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Secret parameters of the original run (never stored): give each again.
    #[arg(long = "set-secret", value_name = "KEY=VALUE")]
    pub set_secret: Vec<String>,

    /// Where run journals are kept.
    #[arg(
        long,
        value_name = "DIR",
        env = "KRUN_STATE_DIR",
        default_value = ".krun"
    )]
    pub state_dir: PathBuf,

    /// Output format on stdout: text for people, json or yaml for programs (with a `schema`).
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: Option<RunsCommand>,

    /// Output format on stdout.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text, global = true)]
    pub output: OutputFormat,

    /// Where run journals are kept.
    #[arg(
        long,
        value_name = "DIR",
        env = "KRUN_STATE_DIR",
        default_value = ".krun",
        global = true
    )]
    pub state_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One run: its state per node, the step it stopped at and why.
    Show {
        #[arg(value_name = "RUN_ID")]
        id: String,
    },
}
