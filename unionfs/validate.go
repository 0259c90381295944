package unionfs

// Validate checks the config and makes its paths absolute.
// (The CLI helper fills this in: see the task note.)
func (c *Config) Validate() error { return nil }
