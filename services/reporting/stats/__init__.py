"""The analyst API: counts, timings, the headline summary and the CTDC export, over the projections."""
