"""What runs the queue: the supervisor process, the job hosts its jobs run in, the messages between them
and the front ends, and how a front end starts or attaches to a supervisor."""
