"""Runs one kdag task: Airflow context and XCom semantics, standard library only."""
