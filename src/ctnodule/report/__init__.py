"""report stage: the model card (`report.html` of a run folder), written from the files the run left there."""
