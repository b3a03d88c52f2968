"""Per-client servers: one protocol object per connection, the read-eval-respond loop."""
