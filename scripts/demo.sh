#!/usr/bin/env bash
echo "demo: not built yet (issue 2 in progress)" >&2
exit 1
