
only_on pacman
op= flags= targets=
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; targets="$targets $*"; break ;;
        --noconfirm | --needed | --quiet | --color=*) ;;
        --sync) op=S ;;
        --upgrade) op=U ;;
        --query) op=Q ;;
        --remove) op=R ;;
        --*) ;;
        -*) letters=${1#-}
            case "$letters" in
                S*) op=S ;; U*) op=U ;; Q*) op=Q ;; R*) op=R ;;
            esac
            flags="$flags${letters#?}" ;;
        *) targets="$targets $1" ;;
    esac
    shift
done
need_root() {
    if ! is_root; then
        echo "error: you cannot perform this operation unless you are root." >&2
        exit 1
    fi
}
has_flag() { case "$flags" in *"$1"*) return 0 ;; esac; return 1; }
case "$op" in
    S)
        need_root
        if has_flag y; then
            echo ":: Synchronizing package databases..."
            echo " core is up to date"
            echo " extra is up to date"
        fi
        if has_flag u; then
            for name in $(ls "$STATE/pkgs" 2>/dev/null); do
                in_repo "$name" && targets="$targets $name"
            done
        fi
        for spec in $targets; do
            name=${spec%%=*}
            if ! in_repo "$name"; then
                echo "error: target not found: $spec" >&2
                exit 1
            fi
            version=$(latest_version "$name")
            case "$spec" in
                *=*) if [ "${spec#*=}" != "$version" ]; then
                        echo "error: target not found: $spec" >&2
                        exit 1
                    fi ;;
            esac
        done
        for spec in $targets; do
            name=${spec%%=*}
            version=$(latest_version "$name")
            if [ "$(installed_version "$name")" = "$version" ]; then
                echo "warning: $name-$version is up to date -- reinstalling"
            fi
            echo "installing $name..."
            set_installed "$name" "$version"
            record "pacman -S $name"
        done
        ;;
    U)
        need_root
        for file in $targets; do
            if [ ! -r "$file" ]; then
                echo "error: '$file': could not find or read package" >&2
                exit 1
            fi
            base=$(basename "$file")
            base=${base%.pkg.tar*}
            rest=${base%-*}
            release=${rest##*-} rest=${rest%-*}
            version=${rest##*-} name=${rest%-*}
            echo "loading packages..."
            echo "installing $name..."
            set_installed "$name" "$version-$release"
            record "pacman -U $file"
        done
        ;;
    Q)
        if [ -z "$targets" ]; then
            for name in $(ls "$STATE/pkgs" 2>/dev/null); do
                echo "$name $(installed_version "$name")"
            done
            exit 0
        fi
        rc=0
        for name in $targets; do
            version=$(installed_version "$name")
            if [ -z "$version" ]; then
                echo "error: package '$name' was not found" >&2
                rc=1
            elif has_flag i; then
                printf 'Name            : %s\nVersion         : %s\nArchitecture    : %s\n\n' "$name" "$version" "$ARCH"
            elif has_flag q; then
                echo "$name"
            else
                echo "$name $version"
            fi
        done
        exit $rc
        ;;
    R)
        need_root
        for name in $targets; do
            if [ -z "$(installed_version "$name")" ]; then
                echo "error: target not found: $name" >&2
                exit 1
            fi
            remove_installed "$name"
            record "pacman -R $name"
        done
        ;;
    *)
        echo "error: no operation specified (use -h for help)" >&2
        exit 1
        ;;
esac
exit 0
