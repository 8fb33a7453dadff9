#!/bin/sh
# kubectl stand-in: reports its package's version; everything else goes to the real kubectl
# of the test machine (bind-mounted read-only at /opt/host-kubectl), which the simulator serves.
version=$(cat /usr/lib/kubectl/version 2>/dev/null || cat /usr/lib/kubernetes/version)
case "$*" in
    "version --client"* | "version --short --client"* | "version --client --short"*)
        echo "Client Version: v$version"
        exit 0 ;;
esac
exec /opt/host-kubectl/kubectl "$@"
