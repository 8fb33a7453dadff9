
case "$TOOL" in
    dnf) only_on dnf ;;
    *) only_on dnf yum ;;
esac
yes=0 verb= args= showdups=0
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift
            for arg in "$@"; do
                if [ -z "$verb" ]; then verb=$arg; else args="$args $arg"; fi
            done
            break ;;
        -y | --assumeyes) yes=1 ;;
        --showduplicates) showdups=1 ;;
        -e | -d | --setopt | --disablerepo | --enablerepo | --disableexcludes | --releasever) shift ;;
        -*) ;;
        *) if [ -z "$verb" ]; then verb=$1; else args="$args $1"; fi ;;
    esac
    shift
done
need_root() {
    if ! is_root; then
        echo "Error: This command has to be run with superuser privileges (under the root user on most systems)." >&2
        exit 1
    fi
}
# Sets name and version from a spec: name, name-version or name-version-release.
resolve() {
    spec=$1 name= version=
    for candidate in $(ls "$REPO" 2>/dev/null | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-); do
        if [ "$spec" = "$candidate" ]; then
            name=$candidate version=$(latest_version "$candidate")
            return 0
        fi
        case "$spec" in
            "$candidate"-*)
                wanted=${spec#"$candidate"-}
                version=$(grep -xF -e "$wanted" "$REPO/$candidate" || grep -F -e "$wanted-" "$REPO/$candidate" | grep "^$wanted-" | sort -V | tail -n 1)
                if [ -n "$version" ]; then
                    name=$candidate
                    return 0
                fi ;;
        esac
    done
    return 1
}
case "$verb" in
    install | upgrade | update | downgrade | reinstall)
        need_root
        plan=
        if [ -z "$args" ] && [ "$verb" != install ]; then
            for name in $(ls "$STATE/pkgs" 2>/dev/null); do
                in_repo "$name" && args="$args $name"
            done
        fi
        for spec in $args; do
            if ! resolve "$spec"; then
                echo "No match for argument: $spec" >&2
                echo "Error: Unable to find a match: $spec" >&2
                exit 1
            fi
            [ "$(installed_version "$name")" = "$version" ] && continue
            plan="$plan $name=$version"
        done
        echo "Dependencies resolved."
        if [ -z "$plan" ]; then
            for spec in $args; do
                resolve "$spec" && echo "Package $name-$(installed_version "$name").$ARCH is already installed."
            done
            echo "Nothing to do."
            echo "Complete!"
            exit 0
        fi
        if [ "$yes" = 0 ]; then
            echo "Is this ok [y/N]: Operation aborted."
            exit 1
        fi
        echo "Installed:"
        for item in $plan; do
            name=${item%%=*} version=${item#*=}
            echo "  $name-$version.$ARCH"
            set_installed "$name" "$version"
            record "$TOOL $verb $name-$version"
        done
        echo
        echo "Complete!"
        ;;
    remove | erase)
        need_root
        for name in $args; do
            if [ -z "$(installed_version "$name")" ]; then
                echo "No match for argument: $name" >&2
                echo "Error: No packages marked for removal." >&2
                exit 1
            fi
            remove_installed "$name"
            record "$TOOL remove $name"
        done
        echo "Complete!"
        ;;
    list)
        what=all
        case "$args" in
            " installed"*) what=installed; args=${args# installed} ;;
            " available"*) what=available; args=${args# available} ;;
        esac
        found=0
        if [ "$what" != available ]; then
            for name in $args; do
                version=$(installed_version "$name")
                [ -n "$version" ] || continue
                [ "$found" = 0 ] && echo "Installed Packages"
                found=1
                printf '%-40s %-20s %s\n' "$name.$ARCH" "$version" "@kubernetes"
            done
        fi
        if [ "$what" != installed ]; then
            header=0
            for name in $args; do
                in_repo "$name" || continue
                if [ "$showdups" = 1 ]; then versions=$(sort -V "$REPO/$name"); else versions=$(latest_version "$name"); fi
                for version in $versions; do
                    [ "$showdups" = 0 ] && [ "$version" = "$(installed_version "$name")" ] && continue
                    [ "$header" = 0 ] && echo "Available Packages"
                    header=1 found=1
                    printf '%-40s %-20s %s\n' "$name.$ARCH" "$version" "kubernetes"
                done
            done
        fi
        if [ "$found" = 0 ]; then
            echo "Error: No matching Packages to list" >&2
            exit 1
        fi
        ;;
    makecache)
        echo "Metadata cache created."
        ;;
    check-update)
        ;;
    "")
        echo "Error: need a command" >&2
        exit 1
        ;;
    *)
        echo "No such command: $verb. Please use /usr/bin/$TOOL --help" >&2
        exit 1
        ;;
esac
exit 0
