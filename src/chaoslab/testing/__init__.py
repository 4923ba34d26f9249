"""chaoslab in a test suite: the pytest plugin (fixtures, markers, the ``chaos`` session) and the
assertions on a recorded session, with the measured figures in every failure message."""
