
version=$(runtime_version crio | sed 's|.*://||')
if [ -z "$version" ]; then
    echo "bash: line 1: crio: command not found" >&2
    exit 127
fi
case "${1:-}" in
    --version | version | -v)
        echo "crio version $version"
        echo "Version:          $version"
        echo "GoVersion:        go1.16"
        echo "Compiler:         gc"
        echo "Platform:         linux/$(uname -m)"
        ;;
    *) echo "crio stand-in: only --version is supported" >&2; exit 1 ;;
esac
