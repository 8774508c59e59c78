"""Local development stack: the real Kafka broker, topics, and the platform's processes."""
