"""Request plumbing every layer above the contract shares: cooperative cancellation with deadlines
(``cancel``) and per-stage timing of the running request (``timing``), both carried in context
variables so nothing below the serving layer needs a handle on the request."""
