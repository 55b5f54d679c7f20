#!/bin/sh
# A trial in plain shell: the parameter comes from the environment, reports go to stdout.
#   ferrotune run --study quad --space quad.toml --direction minimize --trials 20 -- sh train.sh
x=${FERROTUNE_PARAM_X:?run me through ferrotune run: FERROTUNE_PARAM_X is not set}
step=1
while [ "$step" -le 5 ]; do
    loss=$(awk -v x="$x" -v s="$step" 'BEGIN { print (x - 2) ^ 2 + 1 / s }')
    echo "ferrotune: step=$step value=$loss"
    step=$((step + 1))
done
echo "ferrotune: value=$loss"
