"""The run loop: plan → requests → cache → model calls → answers → metrics → results."""
