package worker

// ClaimStart exposes claimStart to the tests.
var ClaimStart = claimStart
