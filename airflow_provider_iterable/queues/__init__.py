"""Message-queue providers for Airflow's common.messaging provider (the optional ``messaging`` extra)."""
