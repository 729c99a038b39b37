"""The KCL-compatible lease table, lease balancing and the lease coordinator."""
