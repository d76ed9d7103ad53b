# Every XCom semantic kdag keeps from Airflow, in one DAG: return values of each JSON type, pushes under
# named keys, a key pushed twice (the last value wins), a task returning None (no row), pulls by one task id,
# by a list of task ids, of a missing key, of the task's own XCom, and params from the DAG and the task.
from datetime import datetime

from airflow import DAG
from airflow.providers.standard.operators.python import PythonOperator

dag = DAG(
    dag_id='xcom_semantics',
    start_date=datetime(2024, 1, 1),
    schedule=None,
    params={'who': 'dag', 'greeting': 'hello'},
)


def produce_mapping(**kwargs):
    ti = kwargs['ti']
    ti.xcom_push(key='count', value=3)
    ti.xcom_push(key='label', value='first')
    ti.xcom_push(key='label', value='second')
    ti.xcom_push(key='nested', value=[1, [2, 3], {'four': 4.5}, None, True])
    return {'rows': [1, 2, 3], 'ok': True, 'ratio': 0.5}


def produce_text():
    return 'plain text'


def produce_number():
    return 42


def produce_nothing():
    print('this task returns None, so it pushes no return_value')


def consume(**kwargs):
    ti = kwargs['ti']
    ti.xcom_push(key='own', value='mine')
    return {
        'one': ti.xcom_pull(task_ids='produce_mapping'),
        'by_key': ti.xcom_pull(task_ids='produce_mapping', key='label'),
        'many': ti.xcom_pull(task_ids=['produce_text', 'produce_number']),
        'missing_key': ti.xcom_pull(task_ids='produce_mapping', key='no_such_key'),
        'from_none': ti.xcom_pull(task_ids='produce_nothing'),
        'own': ti.xcom_pull(key='own'),
        'who': kwargs['params']['who'],
        'greeting': kwargs['params']['greeting'],
    }


produce_mapping_task = PythonOperator(task_id='produce_mapping', python_callable=produce_mapping, dag=dag)
produce_text_task = PythonOperator(task_id='produce_text', python_callable=produce_text, dag=dag)
produce_number_task = PythonOperator(task_id='produce_number', python_callable=produce_number, dag=dag)
produce_nothing_task = PythonOperator(task_id='produce_nothing', python_callable=produce_nothing, dag=dag)
consume_task = PythonOperator(
    task_id='consume', python_callable=consume, params={'who': 'task'}, dag=dag,
)

[produce_mapping_task, produce_text_task, produce_number_task] >> consume_task
consume_task << produce_nothing_task
