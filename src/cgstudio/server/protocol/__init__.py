"""Request schemas per dialect. Unknown fields are accepted and ignored (``extra="allow"``)."""
