"""Reports: report.json, a self-contained report.html, plots and the terminal table."""
