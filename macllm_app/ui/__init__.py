"""The Qt front end. Talks to core/ only through workers; never imports an engine."""
