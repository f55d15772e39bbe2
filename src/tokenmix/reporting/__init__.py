"""Tables, reports and plots built from the JSON files that runs write, with the papers' figures
(:mod:`.paper`) beside ours."""
