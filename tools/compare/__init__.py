"""Comparing runs: the pull-request report (like for like, against seed noise) and Vega plots
drawn offline. No DVC stage runs this package, so editing it retrains nothing."""
