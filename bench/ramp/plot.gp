# gnuplot -e "csv='...'; out='...'; title='...'" bench/ramp/plot.gp
# Two panels over the run: latency percentiles (log scale), and answers per
# second with the open connections (or the offered rate) on the right axis.
set datafile separator ","
set terminal pngcairo size 1200,800 font "sans,10"
set output out
set multiplot layout 2,1 title title
set grid
set key top left
set xlabel "seconds"
set ylabel "latency (ms)"
set logscale y
plot csv using 1:($4 > 0 ? $9 : 1/0) skip 1 with lines lw 2 title "p50", \
     ''  using 1:($4 > 0 ? $11 : 1/0) skip 1 with lines lw 2 title "p95", \
     ''  using 1:($4 > 0 ? $12 : 1/0) skip 1 with lines lw 2 title "p99"
unset logscale y
set ylabel "answers per second"
set y2label y2lab
set y2tics
set ytics nomirror
plot csv using 1:($5 + $6) skip 1 with lines lw 2 title "answers/s", \
     ''  using 1:($6 + $7 + $8) skip 1 with impulses lw 2 title "failed/s", \
     ''  using 1:y2col skip 1 axes x1y2 with lines lw 1 dt 2 title y2lab
unset multiplot
