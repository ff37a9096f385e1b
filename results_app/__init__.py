"""The Streamlit app: the accuracy/energy trade-off, read through the ResultsService.

Start it with ``streamlit run results_app/main.py``. ``data.py`` talks to the service,
``frames.py`` reshapes its tables, ``charts.py`` draws them and ``app_pages/`` holds one
small script per page.
"""
