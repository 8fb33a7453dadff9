#!/bin/sh
# The team's reinstall hook on its PXE host (seed 001: "reset linux os"): asks for NODE to be
# reinstalled from the image (the test harness plays the PXE server and the BMC) and returns
# once NODE is back, with its ssh host keys restored and sshd answering.
set -eu
node=$1
mkdir -p /srv/pxe/requests /srv/pxe/done
rm -f "/srv/pxe/done/$node"
touch "/srv/pxe/requests/$node"
echo "reinstalling $node from the image"
waited=0
while [ ! -e "/srv/pxe/done/$node" ]; do
    waited=$((waited + 1))
    if [ "$waited" -gt 1200 ]; then
        echo "$node is not back after 10 minutes" >&2
        exit 1
    fi
    sleep 0.5
done
echo "$node is back on a fresh system"
