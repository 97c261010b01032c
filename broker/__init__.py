"""RabbitMQ topology, clients (kombu for actors, aio-pika for the web service),
binary payload encoding and the in-process transport of the embedded mode."""
