
version=$(installed_version kubelet)
if [ -z "$version" ]; then
    echo "bash: line 1: kubelet: command not found" >&2
    exit 127
fi
case "${1:-}" in
    --version) echo "Kubernetes v$(upstream "$version")" ;;
    *) echo "kubelet stand-in: only --version is supported" >&2; exit 1 ;;
esac
