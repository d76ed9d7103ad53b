select '{{ params.who }}' as who, '{{ ds }}' as day
