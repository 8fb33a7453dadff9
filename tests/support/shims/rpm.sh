
only_on dnf yum
format= mode= names= all=0
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; names="$names $*"; break ;;
        -q | --query) mode=query ;;
        -qa) mode=query all=1 ;;
        -a | --all) all=1 ;;
        -i | --install | -U | --upgrade | -Uvh | -ivh | -Uv | -iv) mode=install ;;
        --qf | --queryformat) shift; format=$1 ;;
        --qf=* | --queryformat=*) format=${1#*=} ;;
        -*) ;;
        *) names="$names $1" ;;
    esac
    shift
done
show() {
    name=$1 version=$2
    if [ -z "$format" ]; then
        echo "$name-$version.$ARCH"
        return
    fi
    out=$(printf '%s' "$format" | sed \
        -e "s|%{NAME}|$name|g" \
        -e "s|%{VERSION}|${version%-*}|g" \
        -e "s|%{RELEASE}|${version##*-}|g" \
        -e "s|%{ARCH}|$ARCH|g" \
        -e "s|%{EPOCH}|(none)|g")
    printf '%b' "$out"
}
case "$mode" in
    query)
        if [ "$all" = 1 ]; then
            for name in $(ls "$STATE/pkgs" 2>/dev/null); do
                show "$name" "$(installed_version "$name")"
            done
            exit 0
        fi
        rc=0
        for name in $names; do
            version=$(installed_version "$name")
            if [ -z "$version" ]; then
                echo "package $name is not installed"
                rc=1
            else
                show "$name" "$version"
            fi
        done
        exit $rc
        ;;
    install)
        if ! is_root; then
            echo "error: can't create transaction lock on /var/lib/rpm/.rpm.lock (Permission denied)" >&2
            exit 1
        fi
        for file in $names; do
            if [ ! -r "$file" ]; then
                echo "error: open of $file failed: No such file or directory" >&2
                exit 1
            fi
            base=$(basename "$file" .rpm)
            base=${base%.*}
            release=${base##*-} rest=${base%-*}
            version=${rest##*-} name=${rest%-*}
            set_installed "$name" "$version-$release"
            record "rpm -U $file"
        done
        ;;
    *)
        echo "rpm: no operation specified" >&2
        exit 1
        ;;
esac
