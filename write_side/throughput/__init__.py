"""Write throughput: batched reads and commits, and the order desk's fast path for orders."""
