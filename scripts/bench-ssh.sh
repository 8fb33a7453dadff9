#!/usr/bin/env bash
# Measures krun's ssh transport against Ansible and plain OpenSSH on local sshd nodes.
#
#   scripts/bench-ssh.sh                 # NODES=50 STEPS=20 RUNS=5
#   NODES=10 RUNS=3 scripts/bench-ssh.sh
#
# Two scenarios, each timed as whole processes with hyperfine (medians printed at the end):
#   fan-out:    `uname -r` once on every node   krun | ansible -m command -f NODES | xargs -P NODES ssh
#   sequential: STEPS x `uname -r` on one node  krun | ansible playbook of STEPS tasks | ssh + ControlMaster
# Everyone uses the same ed25519 key and verifies host keys against the same known_hosts.
# Ansible runs with pipelining on and its default ControlPersist; persisted masters are closed
# before every timed run so no tool starts warm.
#
# Needs root (sshd's /run/sshd, creating the login user), openssh-server, openssh-client,
# hyperfine, python3; Ansible (ansible-core from PyPI) is installed into $ANSIBLE_VENV on first use.
# Everyone logs in as $BENCH_USER (default krun-bench, created with a stock home): a root whose
# ~/.bashrc runs `pyenv init` costs every ssh session half a second and would drown the
# difference between the tools.
set -euo pipefail

NODES=${NODES:-50}
STEPS=${STEPS:-20}
RUNS=${RUNS:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${ANSIBLE_VENV:-$HOME/.cache/krun-bench/ansible}
BENCH_USER=${BENCH_USER:-krun-bench}

for tool in /usr/sbin/sshd ssh ssh-keygen hyperfine python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench-ssh: missing $tool" >&2; exit 2; }
done
if [ ! -x "$VENV/bin/ansible" ]; then
    echo "bench-ssh: installing ansible-core into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet ansible-core
fi
(cd "$ROOT" && cargo build --quiet --release --example ssh_fanout)
FANOUT=$TARGET/release/examples/ssh_fanout

WORK=$(mktemp -d /tmp/krun-bench.XXXXXX)
SSHD_PIDS=()
close_masters() {
    for socket in "$WORK"/cp/* "$WORK"/cm-*; do
        [ -S "$socket" ] && ssh -F none -o ControlPath="$socket" -O exit dummy >/dev/null 2>&1 || true
    done
}
cleanup() {
    close_masters
    for pid in "${SSHD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- nodes --------------------------------------------------------------------------------
mkdir -p /run/sshd "$WORK/cp"
if ! id -u "$BENCH_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$BENCH_USER"
fi
usermod -p '*' "$BENCH_USER" # "*" is not locked: sshd without PAM refuses locked accounts
chmod 755 "$WORK"
KEY=$WORK/id_ed25519
ssh-keygen -q -t ed25519 -N '' -C bench -f "$KEY"
mapfile -t PORTS < <(python3 - "$NODES" <<'EOF'
import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in held))
EOF
)
: >"$WORK/known_hosts"
: >"$WORK/hosts"
for i in $(seq 1 "$NODES"); do
    dir=$WORK/n$i port=${PORTS[$((i - 1))]}
    mkdir -p "$dir"
    ssh-keygen -q -t ed25519 -N '' -C "n$i" -f "$dir/host_key"
    cat >"$dir/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
PidFile none
AuthorizedKeysFile $KEY.pub
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel ERROR
EOF
    /usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>"$dir/sshd.log" &
    SSHD_PIDS+=($!)
    echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_key.pub")" >>"$WORK/known_hosts"
    echo "n$i 127.0.0.1 $port" >>"$WORK/hosts"
done
for i in $(seq 1 "$NODES"); do
    until (exec 3<>"/dev/tcp/127.0.0.1/${PORTS[$((i - 1))]}") 2>/dev/null; do sleep 0.05; done
done
head -n 1 "$WORK/hosts" >"$WORK/first-host"
FIRST_PORT=${PORTS[0]}

SSH_OPTS="-F none -i $KEY -o UserKnownHostsFile=$WORK/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes"

# --- krun ---------------------------------------------------------------------------------
{
    echo '[ssh]'
    echo "user = \"$BENCH_USER\""
    echo "identity = \"$KEY\""
    echo "known_hosts = \"$WORK/known_hosts\""
    while read -r name host port; do
        printf '\n[nodes.%s]\nhost = "%s"\nport = %s\n' "$name" "$host" "$port"
    done <"$WORK/hosts"
} >"$WORK/inventory.toml"
echo 'sh(node, "uname -r");' >"$WORK/uname.rhai"
for _ in $(seq 1 "$STEPS"); do echo 'sh(node, "uname -r");'; done >"$WORK/steps.rhai"
NODE_FLAGS=$(for i in $(seq 1 "$NODES"); do printf -- '--node n%d ' "$i"; done)

# krun is timed through its real command line (KRUN_CLI=0 times the bare SshPool example).
if [ "${KRUN_CLI:-1}" = 1 ]; then
    export KRUN_STATE_DIR=$WORK/krun-state
    (cd "$ROOT" && cargo build --quiet --release --bin krun)
    KRUN="$TARGET/release/krun"
    KRUN_FANOUT="$KRUN $WORK/uname.rhai --batch $NODES --inventory $WORK/inventory.toml $NODE_FLAGS"
    KRUN_STEPS="$KRUN $WORK/steps.rhai --node n1 --inventory $WORK/inventory.toml"
else
    KRUN_FANOUT="$FANOUT --hosts $WORK/hosts --user $BENCH_USER --identity $KEY --known-hosts $WORK/known_hosts -- uname -r"
    KRUN_STEPS="$FANOUT --hosts $WORK/first-host --user $BENCH_USER --identity $KEY --known-hosts $WORK/known_hosts --repeat $STEPS -- uname -r"
fi

# --- ansible ------------------------------------------------------------------------------
{
    echo '[nodes]'
    while read -r name host port; do echo "$name ansible_host=$host ansible_port=$port"; done <"$WORK/hosts"
    echo
    echo '[nodes:vars]'
    echo "ansible_user=$BENCH_USER"
    echo "ansible_ssh_private_key_file=$KEY"
} >"$WORK/hosts.ini"
cat >"$WORK/ansible.cfg" <<EOF
[defaults]
inventory = $WORK/hosts.ini
host_key_checking = True
forks = $NODES
gathering = explicit
interpreter_python = /usr/bin/python3
retry_files_enabled = False

[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=$WORK/known_hosts -o StrictHostKeyChecking=yes
control_path_dir = $WORK/cp
EOF
{
    echo '- hosts: n1'
    echo '  gather_facts: false'
    echo '  tasks:'
    for i in $(seq 1 "$STEPS"); do
        echo "    - name: step $i"
        echo '      command: uname -r'
    done
} >"$WORK/steps.yml"
export ANSIBLE_CONFIG=$WORK/ansible.cfg
ANSIBLE_FANOUT="$VENV/bin/ansible all -m command -a 'uname -r' -f $NODES"
ANSIBLE_STEPS="$VENV/bin/ansible-playbook $WORK/steps.yml"

# --- plain OpenSSH ------------------------------------------------------------------------
OPENSSH_FANOUT="cut -d' ' -f3 $WORK/hosts | xargs -P $NODES -I{} ssh $SSH_OPTS -p {} $BENCH_USER@127.0.0.1 uname -r"
# OpenSSH 9 picks the post-quantum sntrup761x25519 key exchange, which costs its client far
# more CPU than the curve25519 krun negotiates; this variant shows how much of the gap that is.
OPENSSH_X25519="cut -d' ' -f3 $WORK/hosts | xargs -P $NODES -I{} ssh $SSH_OPTS -o KexAlgorithms=curve25519-sha256 -p {} $BENCH_USER@127.0.0.1 uname -r"
cat >"$WORK/openssh-steps.sh" <<EOF
#!/bin/sh
set -e
S="$SSH_OPTS -o ControlPath=$WORK/cm-%C -p $FIRST_PORT"
ssh \$S -o ControlMaster=yes -o ControlPersist=yes -fN $BENCH_USER@127.0.0.1
for i in \$(seq 1 $STEPS); do ssh \$S $BENCH_USER@127.0.0.1 uname -r; done
ssh \$S -O exit $BENCH_USER@127.0.0.1 2>/dev/null
EOF
chmod +x "$WORK/openssh-steps.sh"
OPENSSH_STEPS="$WORK/openssh-steps.sh"

# Every contender must work before anything is timed.
for check in "$KRUN_FANOUT" "$ANSIBLE_FANOUT" "$OPENSSH_FANOUT" "$OPENSSH_X25519" "$KRUN_STEPS" "$ANSIBLE_STEPS" "$OPENSSH_STEPS"; do
    close_masters
    if ! bash -c "$check" >"$WORK/check.log" 2>&1; then
        echo "bench-ssh: this command failed, not timing anything:" >&2
        echo "  $check" >&2
        tail -n 20 "$WORK/check.log" >&2
        exit 1
    fi
done
close_masters

cat >"$WORK/close-masters.sh" <<EOF
#!/bin/bash
for socket in $WORK/cp/* $WORK/cm-*; do
    [ -S "\$socket" ] && ssh -F none -o ControlPath="\$socket" -O exit dummy >/dev/null 2>&1 || true
done
EOF
chmod +x "$WORK/close-masters.sh"

echo "== fan-out: uname -r on $NODES nodes, $RUNS runs each"
hyperfine --style basic --runs "$RUNS" --prepare "$WORK/close-masters.sh" \
    --export-json "$WORK/fanout.json" \
    -n krun "$KRUN_FANOUT" -n ansible "$ANSIBLE_FANOUT" -n openssh-xargs "$OPENSSH_FANOUT" \
    -n openssh-xargs-x25519 "$OPENSSH_X25519"

echo "== sequential: $STEPS x uname -r on one node, $RUNS runs each"
hyperfine --style basic --runs "$RUNS" --prepare "$WORK/close-masters.sh" \
    --export-json "$WORK/steps.json" \
    -n krun "$KRUN_STEPS" -n ansible "$ANSIBLE_STEPS" -n openssh-controlmaster "$OPENSSH_STEPS"

/usr/bin/time -v bash -c "$KRUN_FANOUT" >/dev/null 2>"$WORK/time.txt"
RSS_KB=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/time.txt")

python3 - "$WORK/fanout.json" "$WORK/steps.json" "$RSS_KB" "$NODES" "$STEPS" <<'EOF'
import json, statistics, sys
fanout, steps, rss_kb, nodes, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def medians(path):
    return {r["command"]: statistics.median(r["times"]) for r in json.load(open(path))["results"]}
print()
for title, path in ((f"fan-out, {nodes} nodes", fanout), (f"sequential, {count} commands", steps)):
    m = medians(path)
    krun = m["krun"]
    print(f"{title}: median seconds")
    for name, value in m.items():
        ratio = "" if name == "krun" else f"   krun/{name} = {krun / value:.2f}"
        print(f"  {name:24} {value:7.3f}{ratio}")
print(f"krun peak RSS, fan-out to {nodes} nodes (whole process, /usr/bin/time): {rss_kb / 1024:.1f} MiB")
EOF
