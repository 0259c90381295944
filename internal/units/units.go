// Package units formats quantities for people. It imports nothing of ours,
// so every package (and command) can share one way of printing sizes.
package units

import "fmt"

// Bytes prints a byte count in binary units with one decimal, "4.0 KiB",
// and below 1 KiB in bytes, "512 B" (negative counts too: they are not sizes).
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
