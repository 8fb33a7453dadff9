
only_on apt
format='${binary:Package}\t${Version}\n' mode= names=
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; names="$names $*"; break ;;
        -W | --show) mode=show ;;
        -s | --status) mode=status ;;
        -f | --showformat) shift; format=$1 ;;
        -f*) format=${1#-f}; format=${format#=} ;;
        --showformat=*) format=${1#--showformat=} ;;
        -*) ;;
        *) names="$names $1" ;;
    esac
    shift
done
rc=0
for name in $names; do
    version=$(installed_version "$name")
    if [ -z "$version" ]; then
        if [ "$mode" = status ]; then
            echo "dpkg-query: package '$name' is not installed and no information is available" >&2
        else
            echo "dpkg-query: no packages found matching $name" >&2
        fi
        rc=1
        continue
    fi
    if [ "$mode" = status ]; then
        printf 'Package: %s\nStatus: install ok installed\nArchitecture: %s\nVersion: %s\n' "$name" "$ARCH" "$version"
        continue
    fi
    out=$(printf '%s' "$format" | sed \
        -e "s|\${binary:Package}|$name|g" \
        -e "s|\${Package}|$name|g" \
        -e "s|\${Version}|$version|g" \
        -e "s|\${Architecture}|$ARCH|g" \
        -e "s|\${Status}|install ok installed|g" \
        -e "s|\${db:Status-Abbrev}|ii |g")
    printf '%b' "$out"
done
exit $rc
