"""One router per area of the API: service, collections, library, search, classify."""
