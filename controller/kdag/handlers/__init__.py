"""kdag's kopf handlers: thin functions that read, call the pure deciders and write (see `registry`)."""
