"""The dashboards room: views of a table, checked and turned into bound SQL."""
