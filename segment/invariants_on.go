//go:build invariants

package segment

const invariantsEnabled = true
