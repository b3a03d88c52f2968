"""Who may talk to the cache: TLS contexts and their rotation, the auth file. Imports nothing above metrics."""
