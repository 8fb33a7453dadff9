
only_on apt
case "${1:-}" in
    -i | --install)
        shift
        if ! is_root; then
            echo "dpkg: error: requested operation requires superuser privilege" >&2
            exit 2
        fi
        for file in "$@"; do
            if [ ! -r "$file" ]; then
                echo "dpkg: error: cannot access archive '$file': No such file or directory" >&2
                exit 1
            fi
            base=$(basename "$file" .deb)
            name=${base%%_*} rest=${base#*_}
            version=${rest%_*}
            echo "Unpacking $name ($version) ..."
            echo "Setting up $name ($version) ..."
            set_installed "$name" "$version"
            record "dpkg -i $file"
        done
        ;;
    -s | --status | -l | --list)
        exec dpkg-query "$@"
        ;;
    *)
        echo "dpkg: error: need an action option" >&2
        exit 2
        ;;
esac
