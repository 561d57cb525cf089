from django.urls import path

from . import playground

app_name = "playground"
urlpatterns = [
    path("", playground.playground, name="page"),
    path("tasks/", playground.playground_tasks, name="tasks"),
    path("stream/", playground.playground_stream, name="stream"),
    path("grade/", playground.playground_grade, name="grade"),
]
