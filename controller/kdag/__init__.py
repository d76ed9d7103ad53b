"""kdag: Airflow's XCom programming model, native to Kubernetes."""
